from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles_after_migrate(sender, app_config=None, using="default", apps=None, **kwargs):
    """Every ``migrate`` leaves the role groups exact, including permissions of models that
    migrations added since (they are created by post_migrate, after data migrations ran).
    Runs once, after the last installed app's permissions exist."""
    from django.apps import apps as global_apps

    if app_config is None or app_config is not list(global_apps.get_app_configs())[-1]:
        return
    if apps is None or "portal" not in {a.label for a in apps.get_app_configs()}:
        return
    try:
        apps.get_model("portal", "AuditEntry")
    except LookupError:  # migrating backwards past portal's first migration
        return
    from portal.roles import sync_roles

    sync_roles()


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from portal import audit

        audit.connect()
        post_migrate.connect(_sync_roles_after_migrate,
                             dispatch_uid="portal.sync_roles_after_migrate")
