from rest_framework.permissions import DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, with reads needing the ``view`` permission too.

    DRF's default lets any authenticated user read; a portal's viewers are granted reads
    explicitly, so GET, HEAD and OPTIONS map to ``view_<model>``.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class ChangePermission(ModelPermissions):
    """Actions that change an object or push state to hosts (setup networks, sync, approve a
    key) need the object's change permission, whatever their HTTP method."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}
