"""``POST /api/hosts/{id}/setup-networks/``: one request per host, checked as a whole; labels;
and host status (Up / NonOperational) as the networks a host carries change.

Hosts and their NICs are rows made here (a real host's agent would report them); the job a
valid request queues is only written (no worker runs in these tests).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hosts import services as host_services
from hosts.choices import HostStatus, JobKind, VmStatus
from hosts.models import VM, Bond, HostNic, Job, NetworkAttachment, Vnic


@pytest.fixture
def networks(cluster, make_network):
    """storage: non-VM, VLAN 10, required; net-a, net-b: untagged VM networks, optional;
    labelled: VM network, VLAN 30, label 'lab', optional."""
    return {
        "storage": make_network("storage", cluster, vm_network=False, vlan=10),
        "net-a": make_network("net-a", cluster, required=False),
        "net-b": make_network("net-b", cluster, required=False),
        "labelled": make_network("labelled", cluster, required=False, vlan=30, label="lab"),
    }


def setup(api, host, **data):
    return api.post(f"/api/hosts/{host.pk}/setup-networks/", data, format="json")


def attached(host) -> dict[str, str]:
    """network name -> interface name of the host's stored attachments."""
    return {a.network.name: a.interface_name
            for a in NetworkAttachment.objects.filter(host=host)
            .select_related("network", "nic", "bond")}


VALID = {
    "bonds": [{"name": "bond0", "mode": 1, "slaves": ["eth2", "eth3"]}],
    "attachments": [
        {"network": "storage", "interface": "bond0",
         "ipv4": {"boot_protocol": "static", "address": "198.18.10.5",
                  "netmask": "255.255.255.0"}},
        {"network": "net-a", "interface": "eth1"},
    ],
}


def test_valid_request_is_stored_and_queues_one_job(api, host, networks):
    response = setup(api, host, **VALID)
    assert response.status_code == 202, response.data
    assert response.data["kind"] == JobKind.SETUP_NETWORKS
    assert [entry["host"] for entry in response.data["hosts"]] == [host.pk]
    assert response.data["status"] == "pending"
    job = Job.objects.get(pk=response.data["id"])
    assert job.request["host"] == host.pk and job.request["check_connectivity"] is True

    bond = Bond.objects.get(host=host)
    assert bond.name == "bond0" and bond.mode == 1
    assert sorted(bond.slaves.values_list("name", flat=True)) == ["eth2", "eth3"]
    assert attached(host) == {"ovirtmgmt": "eth0", "storage": "bond0", "net-a": "eth1"}
    storage = NetworkAttachment.objects.get(host=host, network__name="storage")
    assert (storage.ipv4_boot_protocol, storage.ipv4_address, storage.ipv4_netmask) == (
        "static", "198.18.10.5", "255.255.255.0")
    # The API's read-only views show the result.
    bonds = api.get("/api/bonds/", {"host": host.pk}).data["results"]
    assert [(b["name"], sorted(b["slaves"])) for b in bonds] == [("bond0", ["eth2", "eth3"])]
    listed = api.get("/api/attachments/", {"host": host.pk}).data["results"]
    assert {a["network_name"]: a["interface"] for a in listed} == attached(host)


def test_dry_run_checks_and_stores_nothing(api, host, networks):
    jobs = Job.objects.count()
    response = setup(api, host, dry_run=True, **VALID)
    assert response.status_code == 200, response.data
    assert response.data["dry_run"] is True
    assert not Bond.objects.exists()
    assert attached(host) == {"ovirtmgmt": "eth0"}
    assert Job.objects.count() == jobs


def test_dry_run_of_a_bad_request_lists_its_violations(api, host, networks):
    response = setup(api, host, dry_run=True,
                     bonds=[{"name": "bond0", "slaves": ["eth2"]}])
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.data["errors"]] == [
        ("bonds[0].slaves", "bond_too_few_slaves")]


def test_every_violation_is_listed_at_once(api, host, networks):
    before = (Job.objects.count(), attached(host))
    response = setup(api, host,
                     bonds=[{"name": "bond0", "slaves": ["eth2"]}],
                     attachments=[
                         {"network": "net-a", "interface": "eth1"},
                         {"network": "net-b", "interface": "eth1"},
                         {"network": "storage", "interface": "eth3",
                          "ipv4": {"boot_protocol": "static", "address": "198.18.10.5"}},
                         {"network": "nosuch", "interface": "eth3"},
                     ],
                     removed_attachments=["ovirtmgmt"])
    assert response.status_code == 400
    assert response.data["code"] == "invalid"
    errors = response.data["errors"]
    assert all(e["message"] for e in errors)
    assert {(e["field"], e["code"]) for e in errors} == {
        ("bonds[0].slaves", "bond_too_few_slaves"),
        ("attachments[1]", "untagged_network_not_exclusive"),
        ("attachments[2].ipv4.netmask", "static_ip_incomplete"),
        ("attachments[3].network", "network_unknown"),
        ("removed_attachments[0]", "management_network_removed"),
    }
    untagged = next(e for e in errors if e["code"] == "untagged_network_not_exclusive")
    assert "eth1" in untagged["message"] and "net-a" in untagged["message"]
    assert untagged["interface"] == "eth1"
    assert (Job.objects.count(), attached(host)) == before
    assert not Bond.objects.exists()


@pytest.mark.parametrize(("data", "field", "code"), [
    ({"attachments": [{"network": "storage", "interface": "eth9"}]},
     "attachments[0].interface", "interface_unknown"),
    ({"attachments": [{"network": "net-a", "interface": "eth1",
                       "ipv4": {"boot_protocol": "dhcp", "address": "198.18.0.9"}}]},
     "attachments[0].ipv4", "ip_details_without_static"),
    ({"attachments": [{"network": "ovirtmgmt", "interface": "eth0"}]},
     "attachments[0].ipv4.boot_protocol", "role_network_without_ip"),
    ({"removed_attachments": ["storage"]}, "removed_attachments[0]", "attachment_unknown"),
    ({"removed_bonds": ["bond7"]}, "removed_bonds[0]", "bond_unknown"),
    ({"bonds": [{"name": "team0", "slaves": ["eth2", "eth3"]}]}, "bonds[0].name",
     "bond_name_invalid"),
    ({"bonds": [{"name": "bond0", "mode": 0, "slaves": ["eth2", "eth3"]}],
      "attachments": [{"network": "net-a", "interface": "bond0"}]},
     "attachments[0]", "vm_network_on_bond_mode"),
    ({"labels": {"eth1": ["bad label"]}}, "labels.eth1", "label_invalid"),
])
def test_setup_rules(api, host, networks, data, field, code):
    response = setup(api, host, **data)
    assert response.status_code == 400, response.data
    assert [(e["field"], e["code"]) for e in response.data["errors"]] == [(field, code)]
    assert response.data["code"] == code


def test_malformed_request_is_refused_by_the_serializer(api, host, networks):
    response = setup(api, host, bonds=[{"name": "bond0"}], connectivity_timeout=0,
                     removed_attachments=["ok", "x" * 300])
    assert response.status_code == 400
    fields = {e["field"] for e in response.data["errors"]}
    # Paths are written like the rules' own ("bonds[0].slaves"), whoever found the error.
    assert fields == {"bonds[0].slaves", "connectivity_timeout", "removed_attachments[1]"}


def test_a_bond_carrying_networks_cannot_be_removed(api, host, networks):
    assert setup(api, host, **VALID).status_code == 202
    response = setup(api, host, removed_bonds=["bond0"])
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.data["errors"]] == [
        ("removed_bonds[0]", "bond_in_use")]
    # Detached in the same request, the bond goes.
    response = setup(api, host, removed_bonds=["bond0"], removed_attachments=["storage"])
    assert response.status_code == 202, response.data
    assert not Bond.objects.exists()
    assert HostNic.objects.filter(host=host, bond__isnull=False).count() == 0


def test_network_used_by_running_vms_stays(api, host, networks):
    assert setup(api, host, **VALID).status_code == 202
    vm = VM.objects.create(name="vm1", cluster=host.cluster, host=host, status=VmStatus.UP)
    host_services.save_vnic(Vnic(vm=vm, name="nic1",
                                 profile=networks["net-a"].vnic_profiles.get()))
    response = setup(api, host, removed_attachments=["net-a"])
    assert [(e["field"], e["code"]) for e in response.data["errors"]] == [
        ("removed_attachments[0]", "network_in_use_by_vms")]


# --- Labels -----------------------------------------------------------------------------


def test_labelling_a_nic_attaches_the_labelled_network_and_unlabelling_detaches(
        api, host, networks):
    response = setup(api, host, labels={"eth1": ["lab"]})
    assert response.status_code == 202, response.data
    row = NetworkAttachment.objects.get(host=host, network__name="labelled")
    assert row.via_label and row.interface_name == "eth1"
    assert HostNic.objects.get(host=host, name="eth1").labels == ["lab"]

    # A labelled attachment follows the label: no removal by hand.
    response = setup(api, host, removed_attachments=["labelled"])
    assert [(e["field"], e["code"]) for e in response.data["errors"]] == [
        ("removed_attachments[0]", "label_attachment_changed_by_hand")]

    response = setup(api, host, labels={"eth1": []})
    assert response.status_code == 202, response.data
    assert "labelled" not in attached(host)
    assert HostNic.objects.get(host=host, name="eth1").labels == []


def test_label_moves_the_network_with_it(api, host, networks):
    setup(api, host, labels={"eth1": ["lab"]})
    response = setup(api, host, labels={"eth1": [], "eth2": ["lab"]})
    assert response.status_code == 202, response.data
    assert attached(host)["labelled"] == "eth2"


def test_attaching_a_labelled_network_to_the_cluster_reaches_labelled_nics(
        api, host, datacenter, cluster, make_network):
    network = make_network("backup", vlan=40, label="bk", vm_network=False)
    assert setup(api, host, labels={"eth3": ["bk"]}).status_code == 202
    assert "backup" not in attached(host)  # not in the cluster yet
    response = api.post("/api/cluster-networks/", {"cluster": cluster.pk,
                                                   "network": network.pk, "required": False},
                        format="json")
    assert response.status_code == 201, response.data
    assert attached(host)["backup"] == "eth3"
    assert NetworkAttachment.objects.get(host=host, network=network).via_label
    # Detached from the cluster, it leaves the host.
    assert api.delete(f"/api/cluster-networks/{response.data['id']}/").status_code == 204
    assert "backup" not in attached(host)


# --- Permissions ------------------------------------------------------------------------


def test_view_only_user_cannot_set_up_networks(host, networks, make_user):
    client = APIClient()
    client.force_authenticate(make_user("viewer", ["hosts.view_host"]))
    assert client.get(f"/api/hosts/{host.pk}/").status_code == 200
    response = client.post(f"/api/hosts/{host.pk}/setup-networks/", VALID, format="json")
    assert response.status_code == 403
    assert not Bond.objects.exists()


def test_change_host_permission_may_set_up_networks(host, networks, make_user):
    client = APIClient()
    client.force_authenticate(make_user("operator", ["hosts.view_host", "hosts.change_host"]))
    response = client.post(f"/api/hosts/{host.pk}/setup-networks/", VALID, format="json")
    assert response.status_code == 202, response.data


def test_anonymous_cannot_set_up_networks(host, networks):
    response = APIClient().post(f"/api/hosts/{host.pk}/setup-networks/", VALID, format="json")
    assert response.status_code in (401, 403)


# --- Host status ------------------------------------------------------------------------


def test_host_missing_required_networks_is_non_operational(api, cluster, make_host,
                                                           make_network):
    make_network("storage", cluster, vm_network=False, vlan=10)
    make_network("backup", cluster, vm_network=False, vlan=20)
    make_network("optional", cluster, required=False)
    host = make_host(cluster, status=HostStatus.INSTALLING)
    host_services.refresh_host_status(host, reachable=True)
    host.refresh_from_db()
    assert host.status == HostStatus.NON_OPERATIONAL
    assert host.status_reason == (
        "Host host1 does not comply with the cluster c1 networks, the following networks "
        "are missing on host: 'backup', 'storage'")

    response = setup(api, host, attachments=[
        {"network": "storage", "interface": "eth1"},
        {"network": "backup", "interface": "eth1"}])
    assert response.status_code == 202, response.data
    host.refresh_from_db()
    assert (host.status, host.status_reason) == (HostStatus.UP, "")
    assert api.get(f"/api/hosts/{host.pk}/").data["status"] == HostStatus.UP


def test_new_required_network_turns_an_up_host_non_operational(api, host, cluster,
                                                                make_network):
    assert host.status == HostStatus.UP
    optional = make_network("optional")
    response = api.post("/api/cluster-networks/", {"cluster": cluster.pk,
                                                   "network": optional.pk, "required": False},
                        format="json")
    assert response.status_code == 201
    host.refresh_from_db()
    assert host.status == HostStatus.UP

    required = make_network("storage", vm_network=False)
    response = api.post("/api/cluster-networks/", {"cluster": cluster.pk,
                                                   "network": required.pk}, format="json")
    assert response.status_code == 201
    host.refresh_from_db()
    assert host.status == HostStatus.NON_OPERATIONAL
    assert "'storage'" in host.status_reason and "'optional'" not in host.status_reason

    # Made optional, the host complies again.
    response = api.patch(f"/api/cluster-networks/{response.data['id']}/",
                         {"required": False}, format="json")
    assert response.status_code == 200, response.data
    host.refresh_from_db()
    assert host.status == HostStatus.UP


def test_required_network_on_a_nic_that_is_down(api, host, networks):
    HostNic.objects.filter(host=host, name="eth1").update(link_up=False)
    response = setup(api, host, attachments=[{"network": "storage", "interface": "eth1"}])
    assert response.status_code == 202, response.data
    host.refresh_from_db()
    assert host.status == HostStatus.NON_OPERATIONAL
    assert "'eth1' (storage)" in host.status_reason


def test_maintenance_host_keeps_its_status(host, cluster, make_network):
    host.status = HostStatus.MAINTENANCE
    host.save()
    make_network("storage", cluster, vm_network=False)
    host.refresh_from_db()
    assert host.status == HostStatus.MAINTENANCE
