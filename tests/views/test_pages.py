"""Every operator page: renders for a superuser, sends anonymous users to the login page,
and answers 403 to a logged-in user without the model's view permission."""

import pytest
from django.urls import reverse

# (URL name, attribute of the inventory giving the pk or None, permission it needs)
PAGES = [
    ("networks:datacenter_list", None, "networks.view_datacenter"),
    ("networks:datacenter", "datacenter", "networks.view_datacenter"),
    ("networks:datacenter_add", None, "networks.add_datacenter"),
    ("networks:datacenter_edit", "datacenter", "networks.change_datacenter"),
    ("networks:datacenter_delete", "datacenter", "networks.delete_datacenter"),
    ("networks:cluster_list", None, "networks.view_cluster"),
    ("networks:cluster", "cluster", "networks.view_cluster"),
    ("networks:cluster_add", None, "networks.add_cluster"),
    ("networks:cluster_edit", "cluster", "networks.change_cluster"),
    ("networks:cluster_delete", "cluster", "networks.delete_cluster"),
    ("networks:cluster_networks", "cluster", "networks.view_clusternetwork"),
    ("networks:network_list", None, "networks.view_network"),
    ("networks:network", "storage", "networks.view_network"),
    ("networks:network_add", None, "networks.add_network"),
    ("networks:network_edit", "storage", "networks.change_network"),
    ("networks:network_delete", "storage", "networks.delete_network"),
    ("hosts:host_list", None, "hosts.view_host"),
    ("hosts:host", "host", "hosts.view_host"),
    ("hosts:host_add", None, "hosts.add_host"),
    ("hosts:host_edit", "host", "hosts.change_host"),
    ("hosts:host_delete", "host", "hosts.delete_host"),
    ("hosts:host_setup", "host", "hosts.change_host"),
    ("hosts:vm_list", None, "hosts.view_vm"),
    ("hosts:vm", "vm", "hosts.view_vm"),
    ("hosts:vm_add", None, "hosts.add_vm"),
    ("hosts:vm_edit", "vm", "hosts.change_vm"),
    ("hosts:vm_delete", "vm", "hosts.delete_vm"),
    ("hosts:vnic_add", "vm", "hosts.add_vnic"),
    ("hosts:vnic_edit", "vnic", "hosts.change_vnic"),
    ("hosts:vnic_delete", "vnic", "hosts.delete_vnic"),
    ("hosts:job_list", None, "hosts.view_job"),
    ("hosts:job", "job", "hosts.view_job"),
    ("hosts:job_progress", "job", "hosts.view_job"),
]


def url_of(inventory, name, attr):
    return reverse(name, args=[getattr(inventory, attr).pk] if attr else [])


@pytest.mark.parametrize(("name", "attr", "perm"), PAGES)
def test_page_renders_for_superuser(inventory, admin_client, name, attr, perm):
    response = admin_client.get(url_of(inventory, name, attr))
    assert response.status_code == 200
    assert b"<html" in response.content or name == "hosts:job_progress"


@pytest.mark.parametrize(("name", "attr", "perm"), PAGES)
def test_anonymous_goes_to_login(inventory, client, name, attr, perm):
    url = url_of(inventory, name, attr)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(("name", "attr", "perm"), PAGES)
def test_without_permission_is_forbidden(inventory, login, name, attr, perm):
    client = login()  # logged in, no permission at all
    assert client.get(url_of(inventory, name, attr)).status_code == 403


@pytest.mark.parametrize(("name", "attr", "perm"), PAGES)
def test_the_named_permission_is_enough(inventory, login, name, attr, perm):
    client = login(perm)
    assert client.get(url_of(inventory, name, attr)).status_code == 200


def test_view_permission_does_not_allow_writes(inventory, login):
    client = login("networks.view_network")
    assert client.get(reverse("networks:network_list")).status_code == 200
    assert client.get(reverse("networks:network_add")).status_code == 403
    response = client.post(reverse("networks:network_delete", args=[inventory.storage.pk]))
    assert response.status_code == 403


def test_dashboard(inventory, admin_client):
    from hosts.services import refresh_host_status
    from networks import services

    services.update_cluster_network(inventory.storage.cluster_networks.get(), required=True)
    refresh_host_status(inventory.host)
    page = admin_client.get(reverse("dashboard")).content.decode()
    assert "Hosts by status" in page
    assert "the following networks are missing on host: &#x27;storage&#x27;" in page
    assert "Out-of-sync networks" in page and "vmnet" in page
    assert "Sync h1" in page  # the running job


def test_dashboard_needs_login(client, db):
    assert client.get("/").status_code == 302


def test_demo_banner(inventory, admin_client, settings):
    settings.NETPORTAL_DEMO = False
    assert b"DEMO DATA" not in admin_client.get(reverse("dashboard")).content
    settings.NETPORTAL_DEMO = True
    assert b"DEMO DATA" in admin_client.get(reverse("dashboard")).content


def test_login_page_and_logout(client, admin_user):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": admin_user.username,
                                              "password": "pw-root-admin-long-enough"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


def test_host_page_shows_key_public_key_and_out_of_sync(inventory, admin_client):
    from hosts.choices import HostKeyState

    host = inventory.host
    host.host_key_state = HostKeyState.PENDING
    host.host_key_fingerprint = "SHA256:abc"
    host.save()
    page = admin_client.get(reverse("hosts:host", args=[host.pk])).content.decode()
    assert "Approve key" in page and "SHA256:abc" in page
    assert "ssh-ed25519 " in page or "ssh-rsa " in page  # the portal's public key line
    assert "out of sync" in page and "9000" in page  # reported against wanted
    assert "<svg" in page and 'data-node="net-vmnet"' in page


def test_list_search_filter_sort_paginate(inventory, make_network, admin_client):
    for i in range(30):
        make_network(f"net{i:02d}")
    url = reverse("networks:network_list")
    page = admin_client.get(url, {"q": "net2"}).content.decode()
    assert "net21" in page and "net11" not in page
    page = admin_client.get(url, {"vm_network": "false"}).content.decode()
    assert "storage" in page and "vmnet" not in page
    page = admin_client.get(url, {"sort": "-name", "per_page": 25}).content.decode()
    assert page.index("vmnet") < page.index("storage")
    assert "page 1 of 2" in page
    assert admin_client.get(url, {"sort": "nonsense", "page": "x"}).status_code == 200
