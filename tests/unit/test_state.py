"""The desired-state compiler and the sync comparison (hosts/state.py), on database rows."""

from __future__ import annotations

import pytest
import yaml

from hosts import services as host_services
from hosts import state
from hosts.choices import HostStatus
from hosts.models import Host, HostNic
from networks import rules
from networks import services as network_services
from networks.models import Network

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(cluster):
    host = Host.objects.create(name="h1", address="198.18.0.11", cluster=cluster,
                               status=HostStatus.UP)
    for index in range(4):
        HostNic.objects.create(host=host, name=f"eth{index}")
    dc = cluster.datacenter
    for name, fields in {
        "vm100": {"vlan": 100, "mtu": 9000},
        "storage": {"vm_network": False, "vlan": 200},
        "plain": {"vm_network": False},
    }.items():
        network = network_services.create_network(Network(datacenter=dc, name=name, **fields))
        network_services.attach_network(cluster, network, required=False)
    request = rules.SetupRequest(
        bonds=(rules.BondData("bond0", 4, "mode=4 miimon=100 xmit_hash_policy=2",
                              ("eth2", "eth3")),),
        attachments=(
            rules.AttachmentData("ovirtmgmt", "eth0", rules.IpConfig(
                "static", "198.18.0.11", "255.255.254.0", "198.18.0.1")),
            rules.AttachmentData("vm100", "bond0"),
            rules.AttachmentData("storage", "bond0", rules.IpConfig("static", "198.19.2.11",
                                                                    "24")),
            rules.AttachmentData("plain", "eth1", rules.IpConfig("dhcp")),
        ),
    )
    outcome = host_services.setup_networks(host, request, push=False)
    assert outcome.ok, outcome.violations
    return host


def by_name(document):
    return {i["name"]: i for i in document["interfaces"]}


def test_compiles_bridges_vlans_bonds_and_addresses(host):
    doc = state.compile_state(host, transaction="t1", check_connectivity=False)
    interfaces = by_name(doc)
    assert interfaces["ovirtmgmt"] == {
        "name": "ovirtmgmt", "type": "bridge", "state": "up", "mtu": 1500, "stp": False,
        "ports": ["eth0"], "ipv4": {"method": "static", "addresses": ["198.18.0.11/23"]},
        "ipv6": {"method": "none"}}
    assert interfaces["eth0"]["ipv4"] == {"method": "none"}
    bond = interfaces["bond0"]
    assert (bond["type"], bond["mode"], bond["ports"]) == ("bond", "802.3ad", ["eth2", "eth3"])
    assert bond["options"] == {"miimon": "100", "xmit_hash_policy": "2"}
    # The base device takes the largest MTU of its VLAN networks (RULES.md rule 11).
    assert bond["mtu"] == 9000
    assert interfaces["bond0.100"]["vlan"] == 100 and interfaces["bond0.100"]["mtu"] == 9000
    assert interfaces["vm100"]["ports"] == ["bond0.100"]
    assert interfaces["bond0.200"]["ipv4"]["addresses"] == ["198.19.2.11/24"]
    assert interfaces["bond0.200"]["mtu"] == 1500
    assert "storage" not in interfaces  # a non-VM network has no bridge
    assert interfaces["eth1"]["ipv4"] == {"method": "dhcp"}
    assert doc["routes"] == {"default": {"gateway": "198.18.0.1", "interface": "ovirtmgmt"}}
    assert doc["transaction"] == "t1" and doc["check_connectivity"] is False


def test_nic_no_longer_used_gets_its_addresses_removed(host):
    host.applied_state = state.compile_state(host)
    host.save()
    outcome = host_services.setup_networks(
        host, rules.SetupRequest(removed_attachments=("plain",)), push=False)
    assert outcome.ok
    interfaces = by_name(state.compile_state(host))
    assert interfaces["eth1"] == {"name": "eth1", "type": "ethernet", "state": "up",
                                  "mtu": 1500, "ipv4": {"method": "none"},
                                  "ipv6": {"method": "none"}}


def test_nmstate_yaml_carries_the_same_state(host):
    document = yaml.safe_load(state.nmstate_yaml(state.compile_state(host)))
    interfaces = {i["name"]: i for i in document["interfaces"]}
    assert interfaces["ovirtmgmt"]["type"] == "linux-bridge"
    assert interfaces["bond0"]["link-aggregation"]["port"] == ["eth2", "eth3"]
    assert interfaces["bond0.100"]["vlan"] == {"base-iface": "bond0", "id": 100}
    assert interfaces["ovirtmgmt"]["ipv4"]["address"] == [
        {"ip": "198.18.0.11", "prefix-length": 23}]
    assert document["routes"]["config"][0]["next-hop-address"] == "198.18.0.1"


def reported(document, **changes):
    """A report as the agent would give it for ``document``, with changes per interface."""
    interfaces = []
    for entry in document["interfaces"]:
        item = {"name": entry["name"], "type": entry["type"], "mtu": entry.get("mtu", 1500),
                "ports": entry.get("ports", []), "vlan": entry.get("vlan"),
                "ipv4": entry.get("ipv4", {}).get("addresses", []),
                "dhcp": entry.get("ipv4", {}).get("method") == "dhcp", "ipv6": []}
        item.update(changes.get(entry["name"], {}))
        interfaces.append(item)
    return {"interfaces": interfaces, "routes": document.get("routes", {}), "dns": []}


def test_in_sync_when_the_host_reports_what_the_portal_wants(host):
    report = reported(state.compile_state(host))
    default = state.default_route_network(host)
    for attachment in host.attachments.select_related("network", "nic", "bond"):
        assert state.attachment_differences(attachment, report, default) == []


@pytest.mark.parametrize(("network", "change", "expected"), [
    ("vm100", {"vm100": {"mtu": 1400}}, {"property": "mtu", "wanted": 9000, "reported": 1400}),
    ("ovirtmgmt", {"ovirtmgmt": {"ipv4": []}},
     {"property": "ipv4_address", "wanted": "198.18.0.11/23", "reported": []}),
    ("vm100", {"vm100": {"type": "ethernet"}},
     {"property": "bridged", "wanted": True, "reported": False}),
    ("storage", {"bond0.200": {"vlan": 201}},
     {"property": "vlan", "wanted": 200, "reported": 201}),
])
def test_out_of_sync_names_the_differing_property(host, network, change, expected):
    report = reported(state.compile_state(host), **change)
    attachment = host.attachments.get(network__name=network)
    differences = state.attachment_differences(attachment, report,
                                               state.default_route_network(host))
    assert expected in differences


def test_missing_interface_is_out_of_sync(host):
    document = state.compile_state(host)
    document["interfaces"] = [i for i in document["interfaces"] if i["name"] != "vm100"]
    attachment = host.attachments.get(network__name="vm100")
    differences = state.attachment_differences(attachment, reported(document), None)
    assert differences == [{"property": "implemented", "wanted": "vm100", "reported": None}]
