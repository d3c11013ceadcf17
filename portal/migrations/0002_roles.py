"""The roles admin, network operator and viewer as groups (portal/roles.py)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from portal.roles import create_missing_permissions, sync_roles

    create_missing_permissions(apps)
    sync_roles(apps)


def remove_roles(apps, schema_editor):
    from portal.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("portal", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("networks", "0001_initial"),
        ("hosts", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
