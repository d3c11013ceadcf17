"""The cluster's "Manage networks" table: assign, require and give roles at once."""

from django.urls import reverse

from hosts.choices import HostStatus


def form_data(cluster, assigned, required=(), roles=None):
    """POST data: ``assigned`` and ``required`` are networks, ``roles`` role -> network."""
    from networks.models import Network

    data = {}
    for network in Network.objects.filter(datacenter=cluster.datacenter):
        if network.name in assigned:
            data[f"assigned_{network.pk}"] = "on"
        if network.name in required:
            data[f"required_{network.pk}"] = "on"
    names = {n.name: n.pk for n in Network.objects.filter(datacenter=cluster.datacenter)}
    for role, name in (roles or {}).items():
        data[f"role_{role}"] = names[name]
    return data


ALL_MGMT = {"management": "ovirtmgmt", "display": "ovirtmgmt", "migration": "ovirtmgmt",
            "default_route": "ovirtmgmt"}


def test_assign_required_network_turns_host_non_operational(inventory, make_network,
                                                             admin_client):
    make_network("backup")
    cluster = inventory.cluster
    url = reverse("networks:cluster_networks", args=[cluster.pk])
    data = form_data(cluster, {"ovirtmgmt", "storage", "vmnet", "backup"},
                     {"ovirtmgmt", "backup"}, {**ALL_MGMT, "migration": "storage"})
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    rows = {r.network.name: r for r in cluster.cluster_networks.select_related("network")}
    assert rows["backup"].required and rows["storage"].is_migration
    assert not rows["ovirtmgmt"].is_migration
    inventory.host.refresh_from_db()
    assert inventory.host.status == HostStatus.NON_OPERATIONAL
    assert "'backup'" in inventory.host.status_reason


def test_every_violation_shown_and_nothing_saved(inventory, admin_client):
    cluster = inventory.cluster
    url = reverse("networks:cluster_networks", args=[cluster.pk])
    # The management role moves to vmnet while the cluster has a host (refused), and
    # ovirtmgmt is unassigned (refused): both are reported.
    data = form_data(cluster, {"storage", "vmnet"}, {"vmnet"},
                     {**ALL_MGMT, "management": "vmnet", "display": "vmnet",
                      "migration": "vmnet", "default_route": "vmnet"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert len(errors) >= 2
    page = response.content.decode()
    assert 'class="table-danger"' in page
    rows = {r.network.name: r for r in cluster.cluster_networks.select_related("network")}
    assert rows["ovirtmgmt"].is_management and not rows["vmnet"].required


def test_role_on_unassigned_network_is_a_form_error(inventory, admin_client):
    cluster = inventory.cluster
    url = reverse("networks:cluster_networks", args=[cluster.pk])
    data = form_data(cluster, {"ovirtmgmt"}, {"ovirtmgmt"}, {**ALL_MGMT, "display": "storage"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "assign storage first" in response.content.decode()


def test_detach_network(inventory, admin_client):
    cluster = inventory.cluster
    url = reverse("networks:cluster_networks", args=[cluster.pk])
    response = admin_client.post(url, form_data(cluster, {"ovirtmgmt", "vmnet"},
                                                 {"ovirtmgmt"}, ALL_MGMT))
    assert response.status_code == 302
    assert not cluster.cluster_networks.filter(network__name="storage").exists()


def test_manage_needs_write_permissions(inventory, login):
    client = login("networks.view_clusternetwork")
    url = reverse("networks:cluster_networks", args=[inventory.cluster.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {}).status_code == 403
