"""The portal's roles, as Django groups with exact permission sets.

* ``admin``: every permission (users and groups included). Give the user ``is_staff`` too
  for the Django admin.
* ``network operator``: networks, cluster networks and vNIC profiles (add, change, delete);
  host setup: ``hosts.change_host`` (setup networks, sync a host, a cluster or one
  attachment, refresh, approve a host key: `portal.api.permissions.HostSetupPermission`);
  reads of everything else of the product (data centers, clusters, hosts, NICs, bonds,
  VMs, vNICs, jobs, the audit log).
* ``viewer``: every ``view_*`` permission of the product (networks, hosts, portal).

Reads of ``auth`` (users, groups), ``authtoken`` (API tokens: reading one is impersonating
its user), sessions, admin log entries and content types are not the product's and stay
with ``admin``.

`sync_roles` makes each group hold exactly its set (adding what is missing, removing what is
extra); the data migration ``portal.0002_roles``, ``manage.py sync_roles`` and every
``migrate`` (a post_migrate receiver, so models added later get their permissions in the
roles) call it.
"""

from __future__ import annotations

ADMIN = "admin"
OPERATOR = "network operator"
VIEWER = "viewer"
ROLES = (ADMIN, OPERATOR, VIEWER)

PRODUCT_APPS = ("networks", "hosts", "portal")

OPERATOR_MODELS_ALL = ("networks.network", "networks.clusternetwork", "networks.vnicprofile")
OPERATOR_EXTRA = ("hosts.change_host",)


def role_permissions(permissions) -> dict[str, set[tuple[str, str]]]:
    """Each role's permissions as (app_label, codename), from the existing ones.

    ``permissions`` is an iterable of (app_label, model, codename).
    """
    everything, views, operator = set(), set(), set()
    for app_label, model, codename in permissions:
        key = (app_label, codename)
        everything.add(key)
        if app_label not in PRODUCT_APPS:
            continue
        if codename.startswith("view_"):
            views.add(key)
            operator.add(key)
        if f"{app_label}.{model}" in OPERATOR_MODELS_ALL:
            operator.add(key)
        if f"{app_label}.{codename}" in OPERATOR_EXTRA:
            operator.add(key)
    return {ADMIN: everything, OPERATOR: operator, VIEWER: views}


def sync_roles(apps=None, verbosity: int = 0, stdout=None) -> dict[str, int]:
    """Make the role groups hold exactly their permissions; returns each group's count.

    ``apps`` is a migration's app registry (historical models) or None for the real one.
    Idempotent: a second call changes nothing.
    """
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    rows = list(permission_model.objects.values_list(
        "pk", "content_type__app_label", "content_type__model", "codename"))
    pk_of = {(app, codename): pk for pk, app, _model, codename in rows}
    wanted = role_permissions((app, model, codename) for _pk, app, model, codename in rows)
    counts = {}
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        want = {pk_of[key] for key in wanted[role]}
        have = set(group.permissions.values_list("pk", flat=True))
        if want - have:
            group.permissions.add(*(want - have))
        if have - want:
            group.permissions.remove(*(have - want))
        counts[role] = len(want)
        if verbosity and stdout is not None:
            stdout.write(f"{role}: {len(want)} permissions (+{len(want - have)} "
                         f"-{len(have - want)})\n")
    return counts


def create_missing_permissions(apps) -> None:
    """Content types and permissions of every installed app, now (a data migration runs
    before the post_migrate signal that normally creates them)."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_contenttypes(app_config, verbosity=0, apps=apps)
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
