"""Re-apply the portal's roles (groups admin, network operator, viewer) exactly."""

from django.core.management.base import BaseCommand
from django.db import transaction

from portal.roles import sync_roles


class Command(BaseCommand):
    help = ("Create or correct the groups 'admin', 'network operator' and 'viewer' so each "
            "holds exactly its permissions (idempotent).")

    def handle(self, *args, **options):
        with transaction.atomic():
            sync_roles(verbosity=max(1, options["verbosity"]), stdout=self.stdout)
