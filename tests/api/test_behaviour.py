"""What the API does beyond storing rows: creation side effects, exclusive cluster roles,
and every rule of networks/rules.py answering 400 with its code and field."""

from __future__ import annotations

import pytest

from hosts.models import VM, NetworkAttachment, Vnic
from networks import services
from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile


def errors_of(response) -> list[tuple[str, str]]:
    """(field, code) of every error of a 400 answer, checking the error shape."""
    assert response.status_code == 400, response.data
    assert set(response.data) == {"detail", "code", "errors"}
    for error in response.data["errors"]:
        assert error["message"], error
    return [(e["field"], e["code"]) for e in response.data["errors"]]


def assert_rule(response, field, code):
    """A 400 answer carrying exactly one error: the rule's code on its field."""
    assert errors_of(response) == [(field, code)]
    assert response.data["code"] == code


def role_holders(cluster) -> dict[str, list[str]]:
    rows = ClusterNetwork.objects.filter(cluster=cluster).select_related("network")
    holders: dict[str, list[str]] = {}
    for row in rows:
        for role in row.roles:
            holders.setdefault(role, []).append(row.network.name)
    return holders


# --- Creation side effects --------------------------------------------------------------


def test_new_datacenter_has_the_management_network_and_its_profile(api):
    response = api.post("/api/datacenters/", {"name": "east"}, format="json")
    assert response.status_code == 201, response.data
    networks = list(Network.objects.filter(datacenter_id=response.data["id"]))
    assert [n.name for n in networks] == ["ovirtmgmt"]
    mgmt = networks[0]
    assert mgmt.vm_network and mgmt.description == "Management Network"
    assert mgmt.on_host_name == "ovirtmgmt"
    assert list(mgmt.vnic_profiles.values_list("name", flat=True)) == ["ovirtmgmt"]
    listed = api.get("/api/networks/", {"datacenter": response.data["id"]}).data
    assert [n["name"] for n in listed["results"]] == ["ovirtmgmt"]


def test_new_cluster_is_attached_to_the_management_network(api, datacenter):
    response = api.post("/api/clusters/", {"datacenter": datacenter.pk, "name": "west"},
                        format="json")
    assert response.status_code == 201, response.data
    rows = api.get("/api/cluster-networks/", {"cluster": response.data["id"]}).data["results"]
    assert len(rows) == 1
    assert rows[0]["network_name"] == "ovirtmgmt"
    assert rows[0]["required"] is True and rows[0]["is_management"] is True
    # It carries every kind of traffic until a role moves to a special-purpose network.
    assert rows[0]["roles"] == ["default_route", "display", "management", "migration"]


def test_vm_network_gets_a_default_profile_and_a_non_vm_network_none(api, datacenter):
    vm = api.post("/api/networks/", {"datacenter": datacenter.pk, "name": "guests"},
                  format="json")
    bare = api.post("/api/networks/", {"datacenter": datacenter.pk, "name": "iscsi",
                                       "vm_network": False}, format="json")
    assert vm.status_code == bare.status_code == 201
    assert list(VnicProfile.objects.filter(network_id=vm.data["id"])
                .values_list("name", flat=True)) == ["guests"]
    assert not VnicProfile.objects.filter(network_id=bare.data["id"]).exists()


def test_long_network_name_gets_a_uuid_on_host_name(api, datacenter):
    response = api.post("/api/networks/", {"datacenter": datacenter.pk,
                                           "name": "a network name with spaces"},
                        format="json")
    assert response.status_code == 201, response.data
    name = response.data["on_host_name"]
    assert len(name) == 15 and name.startswith("on")
    assert name[2:] == response.data["uuid"].replace("-", "")[:13]


def test_datacenter_with_clusters_cannot_be_deleted(api, cluster):
    response = api.delete(f"/api/datacenters/{cluster.datacenter_id}/")
    assert response.status_code == 409
    assert response.data["code"] == "in_use" and "c1" in response.data["detail"]
    assert DataCenter.objects.filter(pk=cluster.datacenter_id).exists()


def test_datacenter_without_clusters_is_deleted_with_its_networks(api, datacenter):
    response = api.delete(f"/api/datacenters/{datacenter.pk}/")
    assert response.status_code == 204
    assert not Network.objects.filter(datacenter_id=datacenter.pk).exists()


# --- Roles ------------------------------------------------------------------------------


def test_roles_move_and_fall_back_to_the_management_network(api, cluster, make_network):
    a = make_network("net-a", cluster, required=False)
    b = make_network("net-b", cluster, required=False)
    row_a = ClusterNetwork.objects.get(cluster=cluster, network=a)
    row_b = ClusterNetwork.objects.get(cluster=cluster, network=b)

    response = api.patch(f"/api/cluster-networks/{row_a.pk}/", {"is_display": True},
                         format="json")
    assert response.status_code == 200, response.data
    assert response.data["roles"] == ["display"]
    assert role_holders(cluster)["display"] == ["net-a"]
    assert role_holders(cluster)["migration"] == ["ovirtmgmt"]  # the others stay

    response = api.patch(f"/api/cluster-networks/{row_b.pk}/", {"is_display": True},
                         format="json")
    assert response.status_code == 200, response.data
    assert role_holders(cluster)["display"] == ["net-b"]
    row_a.refresh_from_db()
    assert not row_a.is_display

    # A role taken away goes back to the management network.
    response = api.patch(f"/api/cluster-networks/{row_b.pk}/", {"is_display": False},
                         format="json")
    assert response.status_code == 200, response.data
    assert role_holders(cluster)["display"] == ["ovirtmgmt"]
    api.patch(f"/api/cluster-networks/{row_b.pk}/", {"is_display": True}, format="json")
    assert role_holders(cluster)["display"] == ["net-b"]

    assert api.delete(f"/api/cluster-networks/{row_b.pk}/").status_code == 204
    assert role_holders(cluster) == {role: ["ovirtmgmt"] for role in
                                     ("management", "display", "migration", "default_route")}


def test_attach_with_a_role_takes_it_from_its_holder(api, cluster, make_network):
    make_network("net-a", cluster, required=False, roles=["migration"])
    b = make_network("net-b")
    response = api.post("/api/cluster-networks/", {"cluster": cluster.pk, "network": b.pk,
                                                   "is_migration": True}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["required"] is True  # required by default
    assert role_holders(cluster)["migration"] == ["net-b"]


def test_management_role_cannot_be_unset(api, cluster):
    row = ClusterNetwork.objects.get(cluster=cluster, is_management=True)
    response = api.patch(f"/api/cluster-networks/{row.pk}/", {"is_management": False},
                         format="json")
    assert_rule(response, "is_management", "management_role_unset")
    row.refresh_from_db()
    assert row.is_management


def test_management_network_cannot_be_detached(api, cluster):
    row = ClusterNetwork.objects.get(cluster=cluster, is_management=True)
    response = api.delete(f"/api/cluster-networks/{row.pk}/")
    assert_rule(response, "network", "management_network_detach")
    assert ClusterNetwork.objects.filter(pk=row.pk).exists()


def test_management_network_must_stay_required(api, cluster):
    row = ClusterNetwork.objects.get(cluster=cluster, is_management=True)
    response = api.patch(f"/api/cluster-networks/{row.pk}/", {"required": False},
                         format="json")
    assert_rule(response, "required", "management_network_not_required")


def test_management_role_moves_without_hosts_but_not_with_them(api, cluster, make_network,
                                                                 make_host):
    other = make_network("mgmt2", cluster)
    row = ClusterNetwork.objects.get(cluster=cluster, network=other)
    response = api.patch(f"/api/cluster-networks/{row.pk}/", {"is_management": True},
                         format="json")
    assert response.status_code == 200, response.data
    assert role_holders(cluster)["management"] == ["mgmt2"]

    make_host(cluster)
    back = ClusterNetwork.objects.get(cluster=cluster, network__name="ovirtmgmt")
    response = api.patch(f"/api/cluster-networks/{back.pk}/", {"is_management": True},
                         format="json")
    assert_rule(response, "roles", "management_role_locked")
    assert role_holders(cluster)["management"] == ["mgmt2"]


def test_network_of_another_datacenter_cannot_be_attached(api, cluster):
    other = services.create_datacenter(DataCenter(name="dc2"))
    mgmt2 = services.management_network(other)
    response = api.post("/api/cluster-networks/", {"cluster": cluster.pk,
                                                   "network": mgmt2.pk}, format="json")
    assert_rule(response, "network", "network_other_datacenter")


def test_network_attached_twice_is_refused(api, cluster):
    mgmt = services.management_network(cluster.datacenter)
    response = api.post("/api/cluster-networks/", {"cluster": cluster.pk,
                                                   "network": mgmt.pk}, format="json")
    assert_rule(response, "network", "network_already_in_cluster")


# --- Rules of one network, data center and cluster ---------------------------------------


@pytest.mark.parametrize(("data", "field", "code"), [
    ({"name": "bond-uplink"}, "name", "network_name_reserved_prefix"),
    ({"name": "BONDED"}, "name", "network_name_reserved_prefix"),
    ({"name": "n1", "vlan": 4095}, "vlan", "vlan_out_of_range"),
    ({"name": "n1", "mtu": 50}, "mtu", "mtu_out_of_range"),
    ({"name": "n1", "mtu": 70000}, "mtu", "mtu_out_of_range"),
    ({"name": "n1", "vm_network": False, "stp": True}, "stp", "stp_requires_vm_network"),
    ({"name": "n1", "dns_servers": ["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"]},
     "dns_servers", "dns_servers_too_many"),
    ({"name": "n1", "dns_servers": ["not-an-ip"]}, "dns_servers", "dns_server_invalid"),
    ({"name": "n1", "label": "bad label"}, "label", "label_invalid"),
    ({"name": "ovirtmgmt"}, "name", "network_name_not_unique"),
])
def test_network_rules(api, datacenter, data, field, code):
    before = Network.objects.count()
    response = api.post("/api/networks/", {"datacenter": datacenter.pk, **data},
                        format="json")
    assert_rule(response, field, code)
    assert Network.objects.count() == before


def test_network_limits_that_pass(api, datacenter):
    response = api.post("/api/networks/", {
        "datacenter": datacenter.pk, "name": "edge", "vlan": 4094, "mtu": 68, "stp": True,
        "dns_servers": ["198.18.0.1", "198.18.0.2", "2001:db8::1"], "label": "edge_1"},
        format="json")
    assert response.status_code == 201, response.data
    assert response.data["effective_mtu"] == 68


def test_same_network_name_in_another_datacenter_is_fine(api, datacenter):
    other = services.create_datacenter(DataCenter(name="dc2"))
    response = api.post("/api/networks/", {"datacenter": other.pk, "name": "storage"},
                        format="json")
    assert response.status_code == 201
    response = api.post("/api/networks/", {"datacenter": datacenter.pk, "name": "storage"},
                        format="json")
    assert response.status_code == 201


def test_duplicate_datacenter_name(api, datacenter):
    assert_rule(api.post("/api/datacenters/", {"name": "DC1"}, format="json"),
                "name", "datacenter_name_not_unique")
    # Length limits answer from the field (DRF's own codes) before the rule is reached.
    assert errors_of(api.post("/api/datacenters/", {"name": "x" * 41},
                              format="json")) == [("name", "max_length")]
    assert errors_of(api.post("/api/datacenters/", {"name": ""},
                              format="json")) == [("name", "blank")]


def test_duplicate_cluster_name(api, cluster):
    response = api.post("/api/clusters/", {"datacenter": cluster.datacenter_id, "name": "c1"},
                        format="json")
    assert_rule(response, "name", "cluster_name_not_unique")
    assert Cluster.objects.count() == 1


def test_cluster_mac_pool_rules(api, cluster):
    response = api.patch(f"/api/clusters/{cluster.pk}/", {"mac_pool_start": "56:6f:00:00:10:00",
                                                          "mac_pool_end": "56:6f:00:00:00:ff"},
                         format="json")
    assert_rule(response, "mac_pool_end", "mac_pool_range_reversed")
    response = api.patch(f"/api/clusters/{cluster.pk}/", {"mac_pool_start": "01:00:5e:00:00:01"},
                         format="json")
    assert_rule(response, "mac_pool_start", "mac_address_multicast")


def test_cluster_cannot_move_to_another_datacenter(api, cluster):
    other = services.create_datacenter(DataCenter(name="dc2"))
    response = api.patch(f"/api/clusters/{cluster.pk}/", {"datacenter": other.pk,
                                                          "description": "moved"},
                         format="json")
    assert_rule(response, "datacenter", "cluster_datacenter_immutable")
    cluster.refresh_from_db()
    assert (cluster.datacenter_id, cluster.description) != (other.pk, "moved")
    # Its own data center given again, other edits go through (the same service).
    response = api.patch(f"/api/clusters/{cluster.pk}/", {"datacenter": cluster.datacenter_id,
                                                          "description": "kept"},
                         format="json")
    assert response.status_code == 200, response.data
    cluster.refresh_from_db()
    assert cluster.description == "kept"


def test_network_cannot_move_to_another_datacenter(api, make_network):
    network = make_network("spare")
    other = services.create_datacenter(DataCenter(name="dc2"))
    response = api.patch(f"/api/networks/{network.pk}/", {"datacenter": other.pk},
                         format="json")
    assert_rule(response, "datacenter", "network_datacenter_immutable")
    network.refresh_from_db()
    assert network.datacenter_id != other.pk


def test_cluster_network_keeps_its_cluster_and_network(api, cluster, make_network):
    network = make_network("storage", cluster, required=False)
    spare = make_network("spare")
    row = ClusterNetwork.objects.get(cluster=cluster, network=network)
    response = api.patch(f"/api/cluster-networks/{row.pk}/", {"network": spare.pk},
                         format="json")
    assert_rule(response, "network", "cluster_network_immutable")
    other = services.create_cluster(Cluster(datacenter=cluster.datacenter, name="c2"))
    response = api.patch(f"/api/cluster-networks/{row.pk}/", {"cluster": other.pk,
                                                              "required": True},
                         format="json")
    assert_rule(response, "cluster", "cluster_network_immutable")
    row.refresh_from_db()
    assert (row.cluster_id, row.network_id, row.required) == (cluster.pk, network.pk, False)


def test_rename_of_a_network_used_by_a_host_is_refused(api, cluster, make_network, host):
    network = make_network("storage", cluster, vm_network=False)
    NetworkAttachment.objects.create(host=host, network=network,
                                     nic=host.nics.get(name="eth1"))
    response = api.patch(f"/api/networks/{network.pk}/", {"name": "storage2"}, format="json")
    assert_rule(response, "name", "network_rename_in_use")
    network.refresh_from_db()
    assert network.name == "storage"
    # Other edits of a network in use are fine; the rename of an unused one too.
    response = api.patch(f"/api/networks/{network.pk}/", {"description": "iSCSI"},
                         format="json")
    assert response.status_code == 200
    unused = make_network("spare")
    response = api.patch(f"/api/networks/{unused.pk}/", {"name": "spare2"}, format="json")
    assert response.status_code == 200
    assert response.data["on_host_name"] == "spare"  # stored, never recomputed


def test_vm_flag_of_a_network_used_by_vnics_cannot_be_cleared(api, cluster, host):
    mgmt = services.management_network(cluster.datacenter)
    vm = VM.objects.create(name="vm1", cluster=cluster, host=host)
    api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1",
                             "profile": mgmt.vnic_profiles.get().pk}, format="json")
    response = api.patch(f"/api/networks/{mgmt.pk}/", {"vm_network": False}, format="json")
    assert_rule(response, "vm_network", "network_vm_flag_in_use")


def test_management_network_cannot_be_deleted(api, datacenter):
    mgmt = services.management_network(datacenter)
    response = api.delete(f"/api/networks/{mgmt.pk}/")
    assert_rule(response, "network", "management_network_removal")
    assert Network.objects.filter(pk=mgmt.pk).exists()


def test_mtu_change_of_a_network_in_use_marks_its_hosts_out_of_sync(api, cluster,
                                                                    make_network, host):
    network = make_network("storage", cluster, vm_network=False, vlan=10)
    attachment = NetworkAttachment.objects.create(host=host, network=network,
                                                  nic=host.nics.get(name="eth1"))
    response = api.patch(f"/api/networks/{network.pk}/", {"mtu": 9000}, format="json")
    assert response.status_code == 200, response.data
    attachment.refresh_from_db()
    assert attachment.in_sync is False
    jobs = api.get("/api/jobs/", {"host": host.pk, "kind": "network_change"}).data
    assert jobs["count"] == 1


def test_vnic_profile_rules(api, datacenter, make_network):
    bare = make_network("iscsi", vm_network=False)
    guests = make_network("guests")
    assert_rule(api.post("/api/vnic-profiles/", {"network": bare.pk, "name": "p"},
                         format="json"), "network", "vnic_profile_non_vm_network")
    assert_rule(api.post("/api/vnic-profiles/", {"network": guests.pk, "name": "guests"},
                         format="json"), "name", "vnic_profile_name_not_unique")
    profile = guests.vnic_profiles.get()
    mgmt = services.management_network(datacenter)
    assert_rule(api.patch(f"/api/vnic-profiles/{profile.pk}/", {"network": mgmt.pk},
                          format="json"), "network", "vnic_profile_network_changed")


# --- VMs and vNICs ----------------------------------------------------------------------


@pytest.fixture
def vm(cluster, host):
    return VM.objects.create(name="vm1", cluster=cluster, host=host)


def test_vnic_mac_is_allocated_from_the_cluster_pool(api, vm):
    profile = services.management_network(vm.cluster.datacenter).vnic_profiles.get()
    first = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1", "profile": profile.pk},
                     format="json")
    second = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic2", "mac": ""}, format="json")
    assert first.status_code == second.status_code == 201, (first.data, second.data)
    assert first.data["mac"] == "56:6f:00:00:00:00"
    assert second.data["mac"] == "56:6f:00:00:00:01"


def test_vnic_given_mac_is_normalized(api, vm):
    response = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1",
                                        "mac": "52-54-00-AA-BB-CC"}, format="json")
    assert response.status_code == 201, response.data
    assert Vnic.objects.get(pk=response.data["id"]).mac == "52:54:00:aa:bb:cc"


def test_vnic_duplicate_mac_is_refused(api, vm, cluster):
    other = VM.objects.create(name="vm2", cluster=cluster)
    first = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1"}, format="json")
    response = api.post("/api/vnics/", {"vm": other.pk, "name": "nic1",
                                        "mac": first.data["mac"].upper()}, format="json")
    assert_rule(response, "mac", "mac_address_in_use")
    response = api.post("/api/vnics/", {"vm": other.pk, "name": "nic1",
                                        "mac": "01:00:5e:00:00:01"}, format="json")
    assert_rule(response, "mac", "mac_address_multicast")


def test_vnic_duplicate_name_in_a_vm_is_refused(api, vm):
    assert api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1"},
                    format="json").status_code == 201
    response = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1"}, format="json")
    assert response.status_code == 400, response.data
    assert Vnic.objects.filter(vm=vm).count() == 1


def test_vnic_profile_on_a_network_not_on_the_host_is_refused(api, vm, make_network):
    guests = make_network("guests", vm.cluster, required=False)
    profile = guests.vnic_profiles.get()
    response = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1", "profile": profile.pk},
                        format="json")
    assert_rule(response, "profile", "vnic_network_not_on_host")
    assert not Vnic.objects.exists()
    # A VM without a host may use it (checked when it runs somewhere).
    vm.host = None
    vm.save()
    response = api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1", "profile": profile.pk},
                        format="json")
    assert response.status_code == 201, response.data


def test_vm_host_must_be_in_the_vm_cluster(api, host, datacenter):
    other = services.create_cluster(Cluster(datacenter=datacenter, name="c2"))
    response = api.post("/api/vms/", {"name": "vm9", "cluster": other.pk, "host": host.pk},
                        format="json")
    assert_rule(response, "host", "vm_host_other_cluster")


# --- Hosts ------------------------------------------------------------------------------


def test_new_host_is_installing_and_queues_its_add_host_job(api, cluster):
    from hosts.models import Job

    response = api.post("/api/hosts/", {"name": "h9", "address": "198.18.0.9",
                                        "cluster": cluster.pk}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["status"] == "installing"
    job = Job.objects.get(kind="add_host")
    assert list(job.hosts.values_list("host_id", flat=True)) == [response.data["id"]]
    assert job.created_by.username == "root-admin"


def test_host_with_networks_and_bonds_can_be_deleted(api, host, cluster, make_network):
    from hosts import services as host_services
    from hosts.models import Bond, HostNic
    from networks import rules

    make_network("storage", cluster, vm_network=False, vlan=10)
    outcome = host_services.setup_networks(host, rules.SetupRequest(
        bonds=(rules.BondData("bond0", 1, "", ("eth2", "eth3")),),
        attachments=(rules.AttachmentData("storage", "bond0"),)), push=False)
    assert outcome.ok, outcome.violations
    vm = VM.objects.create(name="vm1", cluster=cluster, host=host)
    response = api.delete(f"/api/hosts/{host.pk}/")
    assert response.status_code == 204, response.data
    assert not (HostNic.objects.exists() or Bond.objects.exists()
                or NetworkAttachment.objects.exists())
    vm.refresh_from_db()
    assert vm.host is None


def test_vm_cannot_move_to_a_host_lacking_its_vnic_networks(api, vm, make_host, make_network):
    guests = make_network("guests", vm.cluster, required=False)
    vm.host = None
    vm.save()
    assert api.post("/api/vnics/", {"vm": vm.pk, "name": "nic1",
                                    "profile": guests.vnic_profiles.get().pk},
                    format="json").status_code == 201
    response = api.patch(f"/api/vms/{vm.pk}/", {"host": make_host(vm.cluster, "h2").pk},
                         format="json")
    assert_rule(response, "host", "vnic_network_not_on_host")
    assert "guests" in response.data["errors"][0]["message"]
    vm.refresh_from_db()
    assert vm.host is None


def test_label_carried_by_host_nics_cannot_be_renamed(api, host, make_network):
    from hosts.models import HostNic

    network = make_network("guests", label="lab")
    HostNic.objects.filter(host=host, name="eth1").update(labels=["lab"])
    response = api.patch(f"/api/networks/{network.pk}/", {"label": "lab2"}, format="json")
    assert_rule(response, "label", "network_label_rename_in_use")
    assert "host1/eth1" in response.data["errors"][0]["message"]
    # Removing the label is allowed.
    response = api.patch(f"/api/networks/{network.pk}/", {"label": ""}, format="json")
    assert response.status_code == 200, response.data
