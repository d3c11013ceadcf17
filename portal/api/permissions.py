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


class HostSetupPermission(ModelPermissions):
    """Actions that push the portal's view to hosts from another object (sync a cluster,
    sync one attachment) need ``hosts.change_host``, the permission of host setup, rather
    than the change permission of the object they start from (changing a cluster's name is
    not the same right as syncing its hosts)."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return super().has_permission(request, view)
        return user.has_perm("hosts.change_host")
