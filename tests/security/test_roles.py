"""Roles (portal/roles.py): admin, network operator and viewer, as groups with exact
permission sets, enforced alike by the API, the Django admin and the operator pages.

Each table row is one operation and the status each role gets; users hold their role's
group only (no direct permissions, no superuser).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client

from portal.roles import ADMIN, OPERATOR, ROLES, VIEWER, sync_roles

A, OP, V = ADMIN, OPERATOR, VIEWER


def perms_of(role) -> set[str]:
    return {f"{app}.{code}" for app, code in Group.objects.get(name=role).permissions
            .values_list("content_type__app_label", "codename")}


# --- The groups -------------------------------------------------------------------------


def test_migration_created_the_roles_with_exact_sets(db):
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    everything = set(Permission.objects.values_list("pk", flat=True))
    assert set(Group.objects.get(name=A).permissions.values_list("pk", flat=True)) == everything
    viewer = perms_of(V)
    assert viewer == {f"{app}.{code}" for app, code in Permission.objects.filter(
        codename__startswith="view_", content_type__app_label__in=["networks", "hosts",
                                                                  "portal"])
        .values_list("content_type__app_label", "codename")}
    assert "authtoken.view_token" not in viewer and "auth.view_user" not in viewer
    operator = perms_of(OP)
    assert viewer <= operator
    assert operator - viewer == {
        "networks.add_network", "networks.change_network", "networks.delete_network",
        "networks.add_clusternetwork", "networks.change_clusternetwork",
        "networks.delete_clusternetwork", "networks.add_vnicprofile",
        "networks.change_vnicprofile", "networks.delete_vnicprofile", "hosts.change_host"}


def test_sync_roles_repairs_and_is_idempotent(db):
    viewer = Group.objects.get(name=V)
    viewer.permissions.add(Permission.objects.get(codename="delete_host"))
    Group.objects.get(name=OP).delete()
    call_command("sync_roles", verbosity=0)
    assert "hosts.delete_host" not in perms_of(V)
    assert "hosts.change_host" in perms_of(OP)
    before = {role: perms_of(role) for role in ROLES}
    counts = sync_roles()
    call_command("sync_roles", verbosity=0)
    assert {role: perms_of(role) for role in ROLES} == before
    assert counts == {role: len(before[role]) for role in ROLES}


# --- The API ----------------------------------------------------------------------------


def _api_operations():
    """(name, method, url(world), data(world), expected status per role)."""
    ok = {A: None, OP: None, V: 403}  # None: the success status of the row
    admin_only = {A: None, OP: 403, V: 403}
    everyone = {A: None, OP: None, V: None}
    return [
        ("list data centers", "get", lambda w: "/api/datacenters/", None, 200, everyone),
        ("create data center", "post", lambda w: "/api/datacenters/",
         lambda w: {"name": "dc9"}, 201, admin_only),
        ("change cluster", "patch", lambda w: f"/api/clusters/{w.cluster.pk}/",
         lambda w: {"description": "x"}, 200, admin_only),
        ("create network", "post", lambda w: "/api/networks/",
         lambda w: {"datacenter": w.dc.pk, "name": "net9", "vlan": 99}, 201, ok),
        ("change network", "patch", lambda w: f"/api/networks/{w.storage.pk}/",
         lambda w: {"description": "x"}, 200, ok),
        ("delete network", "delete", lambda w: f"/api/networks/{w.storage.pk}/", None, 204,
         ok),
        ("attach network to cluster", "post", lambda w: "/api/cluster-networks/",
         lambda w: {"cluster": w.cluster.pk, "network": w.storage.pk, "required": False},
         201, ok),
        ("create vNIC profile", "post", lambda w: "/api/vnic-profiles/",
         lambda w: {"network": w.vmnet.pk, "name": "gold"}, 201, ok),
        ("list hosts", "get", lambda w: "/api/hosts/", None, 200, everyone),
        ("create host", "post", lambda w: "/api/hosts/",
         lambda w: {"name": "h9", "address": "198.18.0.99", "cluster": w.cluster.pk}, 201,
         admin_only),
        ("change host", "patch", lambda w: f"/api/hosts/{w.host.pk}/",
         lambda w: {"ssh_port": 2222}, 200, ok),
        ("delete host", "delete", lambda w: f"/api/hosts/{w.host2.pk}/", None, 204,
         admin_only),
        ("setup networks (dry run)", "post",
         lambda w: f"/api/hosts/{w.host.pk}/setup-networks/",
         lambda w: {"attachments": [{"network": "vmnet", "interface": "eth1"}],
                    "dry_run": True}, 200, ok),
        ("setup networks", "post", lambda w: f"/api/hosts/{w.host.pk}/setup-networks/",
         lambda w: {"attachments": [{"network": "vmnet", "interface": "eth1"}]}, 202, ok),
        ("sync host", "post", lambda w: f"/api/hosts/{w.host.pk}/sync/", None, 202, ok),
        ("refresh host", "post", lambda w: f"/api/hosts/{w.host.pk}/refresh/", None, 202,
         ok),
        ("approve host key", "post", lambda w: f"/api/hosts/{w.host.pk}/approve-key/",
         lambda w: {"fingerprint": "SHA256:" + "A" * 43}, 202, ok),
        ("sync cluster", "post", lambda w: f"/api/clusters/{w.cluster.pk}/sync/", None, 202,
         ok),
        ("sync attachment", "post",
         lambda w: f"/api/attachments/{w.host.attachments.first().pk}/sync/", None, 202, ok),
        ("desired state", "get", lambda w: f"/api/hosts/{w.host.pk}/desired-state/", None,
         200, everyone),
        ("list jobs", "get", lambda w: "/api/jobs/", None, 200, everyone),
        ("list VMs", "get", lambda w: "/api/vms/", None, 200, everyone),
        ("create VM", "post", lambda w: "/api/vms/",
         lambda w: {"name": "vm9", "cluster": w.cluster.pk}, 201, admin_only),
        ("change vNIC", "patch", lambda w: f"/api/vnics/{w.vnic.pk}/",
         lambda w: {"linked": False}, 200, admin_only),
        ("list NICs", "get", lambda w: "/api/host-nics/", None, 200, everyone),
        ("audit log", "get", lambda w: "/api/audit/", None, 200, everyone),
    ]


API_CASES = [pytest.param(role, *op[1:], id=f"{role}:{op[0]}") for op in _api_operations()
             for role in ROLES]


@pytest.mark.parametrize(("role", "method", "url", "data", "success", "expected"), API_CASES)
def test_api_role_table(role, method, url, data, success, expected, world, role_user,
                        token_client):
    client = token_client(role_user(role))
    want = expected[role] or success
    response = getattr(client, method)(url(world), data(world) if data else None,
                                       format="json")
    assert response.status_code == want, getattr(response, "data", response)


def test_api_without_any_role_reads_nothing(world, make_user, token_client):
    client = token_client(make_user("nobody"))
    for url in ("/api/networks/", "/api/hosts/", "/api/jobs/", "/api/audit/"):
        assert client.get(url).status_code == 403


# --- The Django admin -------------------------------------------------------------------

ADMIN_PAGES = [
    # (model admin URL part, expected changelist / add status per role (A, OP, V))
    ("networks/datacenter", (200, 200, 200), (200, 403, 403)),
    ("networks/cluster", (200, 200, 200), (200, 403, 403)),
    ("networks/network", (200, 200, 200), (200, 200, 403)),
    ("networks/clusternetwork", (200, 200, 200), (200, 200, 403)),
    ("networks/vnicprofile", (200, 200, 200), (200, 200, 403)),
    ("hosts/host", (200, 200, 200), (200, 403, 403)),
    ("hosts/vm", (200, 200, 200), (200, 403, 403)),
    ("hosts/job", (200, 200, 200), (403, 403, 403)),  # jobs come from actions only
    ("portal/auditentry", (200, 200, 200), (403, 403, 403)),  # append-only
    ("auth/user", (200, 403, 403), (200, 403, 403)),
    ("authtoken/tokenproxy", (200, 403, 403), (200, 403, 403)),
]


@pytest.mark.parametrize(("page", "changelist", "add"), ADMIN_PAGES,
                         ids=[p[0] for p in ADMIN_PAGES])
def test_admin_role_table(page, changelist, add, world, role_user):
    for index, role in enumerate(ROLES):
        client = Client()
        client.force_login(role_user(role, f"{role}-{page}".replace(" ", "-")))
        got = (client.get(f"/admin/{page}/").status_code,
               client.get(f"/admin/{page}/add/").status_code)
        assert got == (changelist[index], add[index]), (role, page)


def test_admin_change_page_is_read_only_for_viewer(world, role_user):
    client = Client()
    client.force_login(role_user(VIEWER))
    url = f"/admin/networks/network/{world.storage.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(url, {"name": "renamed"}).status_code == 403


# --- The operator pages (the UI's generic views check the model permissions) ------------

UI_CASES = [
    # (name, method, url(world), expected per role (A, OP, V))
    ("network list", "get", lambda w: "/networks/", (200, 200, 200)),
    ("add network page", "get", lambda w: "/networks/add/", (200, 200, 403)),
    ("add data center page", "get", lambda w: "/datacenters/add/", (200, 403, 403)),
    ("delete host page", "get", lambda w: f"/hosts/{w.host.pk}/delete/", (200, 403, 403)),
    ("setup networks page", "get", lambda w: f"/hosts/{w.host.pk}/setup-networks/",
     (200, 200, 403)),
    ("sync host", "post", lambda w: f"/hosts/{w.host.pk}/sync/", (302, 302, 403)),
    ("job list", "get", lambda w: "/jobs/", (200, 200, 200)),
]


@pytest.mark.parametrize(("name", "method", "url", "expected"), UI_CASES,
                         ids=[c[0] for c in UI_CASES])
def test_ui_role_table(name, method, url, expected, world, role_user):
    for index, role in enumerate(ROLES):
        client = Client()
        client.force_login(role_user(role, f"{role}-ui".replace(" ", "-")))
        response = getattr(client, method)(url(world))
        assert response.status_code == expected[index], (role, name)
