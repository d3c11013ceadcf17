"""First start of a portal: demo inventory into an empty database, a first admin account."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from networks.models import DataCenter


class Command(BaseCommand):
    help = "Load the demo inventory when the database is empty; create the first admin."

    def handle(self, *args, **options):
        if not DataCenter.objects.exists() and os.environ.get("NETPORTAL_NO_DEMO") != "1":
            call_command("load_demo", stdout=self.stdout)
        users = get_user_model().objects
        if not users.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser("admin", "", password)
            path = settings.DATA_DIR / "admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            self.stdout.write(f"Created the admin account 'admin'; its password is in {path}")
