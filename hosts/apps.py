from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "hosts"
    verbose_name = "Hosts"

    def ready(self) -> None:
        # Bind the shared tasks to the portal's Celery app in every process (web, shell,
        # tests), not only in workers: otherwise a web process would queue jobs on Celery's
        # default app and its default broker.
        import portal.celery  # noqa: F401
