"""Unit tests of networks/rules.py: pure functions, no database, no Django.

Every code in `rules.CODES` has a failing case (FAILING) and a passing counterpart
(PASSING); `test_every_code_has_cases` fails when a code is added without both.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from networks import constants as c
from networks import rules as r
from networks.rules import (
    AttachmentData,
    BondData,
    ClusterNetworkData,
    HostData,
    IpConfig,
    NetworkChange,
    NetworkData,
    NicData,
    SetupRequest,
)

MGMT = c.MANAGEMENT_NETWORK_NAME
DHCP = IpConfig(c.BOOT_DHCP)
LONG_NIC = "enp12s0f1np1"  # 12 characters: "<nic>.10" fits IFNAMSIZ, "<nic>.100" does not


def static(address="198.18.1.10", netmask="255.255.255.0", gateway=""):
    return IpConfig(c.BOOT_STATIC, address, netmask, gateway)


def att(network, interface, **kw):
    return AttachmentData(network=network, interface=interface, **kw)


def bond(name="bond1", slaves=("eth4", "eth5"), mode=1, **kw):
    return BondData(name=name, mode=mode, slaves=tuple(slaves), **kw)


# --- A host to set up -------------------------------------------------------------------
#
#   eth0: ovirtmgmt (dhcp)          eth1, eth4, eth5, LONG_NIC: free
#   bond0 (mode 1; eth2 + eth3): storage (untagged, non-VM), vm100 (VLAN 100, used by VMs)
#   eth5.10: a reported VLAN device


def net(name, **kw):
    return NetworkData(name=name, **kw)


NETWORKS = {
    n.name: n
    for n in (
        net(MGMT, required=True,
            roles=frozenset({c.ROLE_MANAGEMENT, c.ROLE_DEFAULT_ROUTE})),
        net("storage", vm_network=False, required=True),
        net("vm100", vlan=100),
        net("vm100b", vlan=100),
        net("vm200", vlan=200),
        net("vm10", vlan=10),
        net("jumbo", vlan=300, mtu=9000),
        net("display", vlan=400, roles=frozenset({c.ROLE_DISPLAY})),
        net("labelled", vlan=500, label="lab"),
        net("qos", vlan=600, has_qos=True),
        net("outside", vlan=700, in_cluster=False),
        net("untagged2"),
    )
}


def make_host(**overrides) -> HostData:
    nics = {n: NicData(n) for n in ("eth0", "eth1", "eth2", "eth3", "eth4", "eth5", LONG_NIC)}
    nics["eth5.10"] = NicData("eth5.10", is_vlan_device=True)
    fields = dict(
        name="host1",
        cluster="cl1",
        nics=nics,
        bonds={"bond0": bond("bond0", ("eth2", "eth3"))},
        attachments={
            MGMT: att(MGMT, "eth0", ipv4=DHCP),
            "storage": att("storage", "bond0"),
            "vm100": att("vm100", "bond0"),
        },
        networks=dict(NETWORKS),
        networks_used_by_running_vms=frozenset({"vm100"}),
    )
    fields.update(overrides)
    return HostData(**fields)


def labelled_host() -> HostData:
    """eth1 carries label 'lab', so 'labelled' sits there through the label."""
    host = make_host()
    nics = dict(host.nics, eth1=NicData("eth1", labels=frozenset({"lab"})))
    attachments = dict(host.attachments, labelled=att("labelled", "eth1", via_label=True))
    return replace(host, nics=nics, attachments=attachments)


def out_of_sync_host() -> HostData:
    host = make_host()
    attachments = dict(host.attachments, vm100=att("vm100", "bond0", out_of_sync=True))
    return replace(host, attachments=attachments)


def setup(host=None, **request):
    return r.validate_setup_networks(host or make_host(), SetupRequest(**request))


# --- Builders with valid defaults for the other rules ----------------------------------


def network(**kw):
    args = dict(name="storage", description="", vlan=None, mtu=0, vm_network=True, stp=False,
                label=None, dns_servers=(), on_host_name="storage", other_names=(MGMT,),
                other_on_host_names=(MGMT, "on0123456789abc"))
    args.update(kw)
    return r.check_network(**args)


def cluster(name="cl1", others=("Other",), start="56:6f:1a:00:00:00", end="56:6f:1a:00:ff:ff"):
    return r.check_cluster(name, others, start, end)


def cl_net(name, *roles, required=True):
    return ClusterNetworkData(name, required=required, roles=frozenset(roles))


CLUSTER_NETS = (cl_net(MGMT, c.ROLE_MANAGEMENT, c.ROLE_DEFAULT_ROUTE),
                cl_net("display", c.ROLE_DISPLAY), cl_net("storage", required=False))


def cluster_networks(assignments=CLUSTER_NETS, has_hosts=False, previous=None):
    return r.check_cluster_networks(assignments, cluster_has_hosts=has_hosts,
                                    previous=previous)


def detach(name):
    return r.detach_from_cluster(CLUSTER_NETS, name)[1]


def change(old=None, new=None, **kw):
    old = old or net("storage", label="lab")
    return r.check_network_change(NetworkChange(old=old, new=new or old, **kw))


def profile(**kw):
    args = dict(name="web", network_name="vm100", network_is_vm=True,
                other_profile_names_on_network=("vm100",), network_changed=False)
    args.update(kw)
    return r.check_vnic_profile(**args)


def vnic(**kw):
    args = dict(name="nic1", mac="56:6f:1a:00:00:05", vnic_type="virtio",
                pool_start="56:6f:1a:00:00:00", pool_end="56:6f:1a:00:ff:ff",
                used_macs={"56:6f:1a:00:00:01"}, profile_network="vm100",
                profile_network_is_vm=True, networks_on_host={MGMT, "vm100"})
    args.update(kw)
    return r.check_vnic(**args)


def attach(**kw):
    args = dict(network="storage", network_datacenter="dc1", cluster="c1",
                cluster_datacenter="dc1", networks_in_cluster={MGMT})
    args.update(kw)
    return r.check_attach_to_cluster(**args)


def role_removal(**kw):
    args = dict(network=MGMT, cluster="c1", current_roles={"management", "display"},
                new_roles={"management"})
    args.update(kw)
    return r.check_role_removal(**args)


def removal(**kw):
    args = dict(network="storage", is_management=False, vms_using=[])
    args.update(kw)
    return r.check_network_removal(**args)


def mac_alloc(used):
    mac, violations = r.allocate_vnic_mac(cluster="c1", pool_start="56:6f:00:00:00:00",
                                          pool_end="56:6f:00:00:00:01", used=used)
    assert (mac is None) == bool(violations)
    return violations


def vm_check(**kw):
    args = dict(vm="vm1", cluster="c1", host="h1", host_cluster="c1")
    args.update(kw)
    return r.check_vm(**args)


# --- The tables -------------------------------------------------------------------------
# FAILING: (code, violations-producing thunk, expected field or None)

FAILING = [
    # Names and limits
    ("datacenter_name_length", lambda: r.check_datacenter("", []), "name"),
    ("datacenter_name_length", lambda: r.check_datacenter("d" * 41, []), "name"),
    ("datacenter_name_not_unique", lambda: r.check_datacenter("Default", ["default"]), "name"),
    ("cluster_name_length", lambda: cluster(name="c" * 41), "name"),
    ("cluster_name_not_unique", lambda: cluster(name="other"), "name"),
    ("mac_address_invalid", lambda: cluster(start="56:6f:1a:00:00"), "mac_pool_start"),
    ("mac_address_invalid", lambda: cluster(end="00:00:00:00:00:00"), "mac_pool_end"),
    ("mac_address_multicast", lambda: cluster(start="01:00:5e:00:00:01"), "mac_pool_start"),
    ("mac_pool_range_reversed", lambda: cluster(start="56:6f:1a:01:00:00"), "mac_pool_end"),
    ("network_name_length", lambda: network(name="", on_host_name="on0000000000000"), "name"),
    ("network_name_length", lambda: network(name="n" * 257), "name"),
    ("network_name_not_unique", lambda: network(name=MGMT, on_host_name=MGMT), "name"),
    ("network_name_reserved_prefix", lambda: network(name="BoNd_net"), "name"),
    ("network_name_clashes_on_host_name", lambda: network(name="on0123456789abc"), "name"),
    ("on_host_name_not_unique",
     lambda: network(name="my storage", on_host_name="on0123456789abc"), "on_host_name"),
    ("description_too_long", lambda: network(description="d" * 4001), "description"),
    ("vlan_out_of_range", lambda: network(vlan=4095), "vlan"),
    ("vlan_out_of_range", lambda: network(vlan=-1), "vlan"),
    ("mtu_out_of_range", lambda: network(mtu=67), "mtu"),
    ("mtu_out_of_range", lambda: network(mtu=65536), "mtu"),
    ("stp_requires_vm_network", lambda: network(stp=True, vm_network=False), "stp"),
    ("label_invalid", lambda: network(label="not a label"), "label"),
    ("label_invalid", lambda: r.check_label("x" * 51, "labels.eth1"), "labels.eth1"),
    ("dns_servers_too_many", lambda: network(dns_servers=["198.18.0.1"] * 4), "dns_servers"),
    ("dns_server_invalid", lambda: network(dns_servers=["198.18.0"]), "dns_servers"),
    ("bond_name_invalid", lambda: r.check_bond(bond("eth9")), "bonds.name"),
    ("bond_name_invalid", lambda: r.check_bond(bond("bond")), "bonds.name"),
    ("bond_name_invalid", lambda: r.check_bond(bond("bond0123456789ab")), "bonds.name"),
    ("bond_mode_invalid", lambda: r.check_bond(bond(mode=7)), "bonds.mode"),
    ("bond_options_invalid", lambda: r.check_bond(bond(options="miimon")), "bonds.options"),
    ("bond_options_invalid",
     lambda: r.check_bond(bond(options="miimon=100 miimon=200")), "bonds.options"),
    ("bond_options_mode_mismatch",
     lambda: r.check_bond(bond(mode=1, options="mode=4 miimon=100")), "bonds.options"),
    # Data center and cluster
    ("role_unknown", lambda: cluster_networks(CLUSTER_NETS + (cl_net("g", "gluster"),)),
     "roles"),
    ("role_not_exclusive",
     lambda: cluster_networks(CLUSTER_NETS + (cl_net("d2", c.ROLE_DISPLAY),)), "roles"),
    ("management_network_missing", lambda: cluster_networks(CLUSTER_NETS[1:]), "roles"),
    ("management_network_not_required",
     lambda: cluster_networks((cl_net(MGMT, c.ROLE_MANAGEMENT, required=False),)), "required"),
    ("management_role_locked",
     lambda: cluster_networks(r.assign_role(CLUSTER_NETS, "storage", c.ROLE_MANAGEMENT),
                              has_hosts=True, previous=CLUSTER_NETS), "roles"),
    ("management_network_detach", lambda: detach(MGMT), "network"),
    ("network_not_in_cluster", lambda: detach("nope"), "network"),
    ("network_not_in_cluster", lambda: setup(attachments=(att("outside", "eth1"),)),
     "attachments[0].network"),
    # Changing a network
    ("network_rename_in_use", lambda: change(new=net("storage2"), hosts_using=("h1",)), "name"),
    ("network_rename_in_use", lambda: change(new=net("storage2"), vms_using=("vm1",)), "name"),
    ("network_vm_flag_in_use",
     lambda: change(old=net("vm"), new=net("vm", vm_network=False), vnics_using=2),
     "vm_network"),
    ("network_label_rename_in_use",
     lambda: change(new=net("storage", label="lab2"), nics_with_old_label=("h1/eth1",)),
     "label"),
    # What an object keeps for life
    ("cluster_datacenter_immutable",
     lambda: r.check_parents_kept("cluster", {"datacenter": 1}, {"datacenter": 2}),
     "datacenter"),
    ("network_datacenter_immutable",
     lambda: r.check_parents_kept("network", {"datacenter": 1}, {"datacenter": 2}),
     "datacenter"),
    ("cluster_network_immutable",
     lambda: r.check_parents_kept("cluster network", {"cluster": 1, "network": 5},
                                  {"network": 6}), "network"),
    ("cluster_network_immutable",
     lambda: r.check_parents_kept("cluster network", {"cluster": 1, "network": 5},
                                  {"cluster": 2, "network": 5}), "cluster"),
    # Setting up a host's networks: the request itself
    ("bond_listed_twice", lambda: setup(bonds=(bond(), bond())), "bonds[1].name"),
    ("bond_listed_twice", lambda: setup(bonds=(bond("bond0", ("eth2", "eth3")),),
                                        removed_bonds=("bond0",)), "removed_bonds[0]"),
    ("bond_slave_listed_twice", lambda: setup(bonds=(bond(slaves=("eth4", "eth4", "eth5")),)),
     "bonds[0].slaves"),
    ("bond_unknown", lambda: setup(removed_bonds=("bond9",)), "removed_bonds[0]"),
    ("interface_unknown", lambda: setup(attachments=(att("vm200", "eth9"),)),
     "attachments[0].interface"),
    ("interface_unknown", lambda: setup(bonds=(bond(slaves=("eth4", "eth9")),)),
     "bonds[0].slaves"),
    ("interface_unknown", lambda: setup(labels={"eth9": frozenset({"x"})}), "labels.eth9"),
    ("network_unknown", lambda: setup(attachments=(att("nope", "eth1"),)),
     "attachments[0].network"),
    ("attachment_unknown", lambda: setup(removed_attachments=("vm200",)),
     "removed_attachments[0]"),
    ("network_listed_twice",
     lambda: setup(attachments=(att("vm200", "eth1"), att("vm200", "eth4"))),
     "attachments[1].network"),
    ("network_listed_twice",
     lambda: setup(attachments=(att("vm200", "eth1"),), removed_attachments=("vm200",)),
     "removed_attachments[0]"),
    ("label_listed_twice",
     lambda: setup(labels={"eth1": frozenset({"x"}), "eth4": frozenset({"x"})}),
     "labels.eth4"),
    ("management_network_removed", lambda: setup(removed_attachments=(MGMT,)),
     "removed_attachments[0]"),
    ("label_attachment_changed_by_hand",
     lambda: setup(labelled_host(), removed_attachments=("labelled",)),
     "removed_attachments[0]"),
    ("label_attachment_changed_by_hand",
     lambda: setup(labelled_host(), attachments=(att("labelled", "eth4"),)),
     "attachments[0].interface"),
    ("network_in_use_by_vms", lambda: setup(removed_attachments=("vm100",)),
     "removed_attachments[0]"),
    ("out_of_sync_not_synced",
     lambda: setup(out_of_sync_host(), attachments=(att("vm100", "bond0", ipv4=DHCP),)),
     "attachments[0]"),
    ("bond_in_use", lambda: setup(removed_bonds=("bond0",)), "removed_bonds[0]"),
    # Setting up a host's networks: the resulting host
    ("label_on_several_interfaces",
     lambda: setup(labelled_host(), labels={"eth4": frozenset({"lab"})}), "labels.eth4"),
    ("label_on_bond_slave", lambda: setup(labels={"eth2": frozenset({"x"})}), "labels.eth2"),
    ("label_on_vlan_device", lambda: setup(labels={"eth5.10": frozenset({"x"})}),
     "labels.eth5.10"),
    ("attached_to_vlan_device", lambda: setup(attachments=(att("vm200", "eth5.10"),)),
     "attachments[0].interface"),
    ("vlan_device_name_too_long", lambda: setup(attachments=(att("vm200", LONG_NIC),)),
     "attachments[0]"),
    ("role_network_without_ip", lambda: setup(attachments=(att("display", "eth1"),)),
     "attachments[0].ipv4.boot_protocol"),
    ("boot_protocol_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=IpConfig("bootp")),)),
     "attachments[0].ipv4.boot_protocol"),
    ("static_ip_incomplete",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(netmask="")),)),
     "attachments[0].ipv4.netmask"),
    ("static_ip_incomplete",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(address="")),)),
     "attachments[0].ipv4.address"),
    ("ip_details_without_static",
     lambda: setup(attachments=(att("vm200", "eth1",
                                    ipv4=IpConfig(c.BOOT_DHCP, "198.18.1.10")),)),
     "attachments[0].ipv4"),
    ("ip_address_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(address="198.18.1.300")),)),
     "attachments[0].ipv4.address"),
    ("ip_address_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(address="2001:db8::1")),)),
     "attachments[0].ipv4.address"),
    ("ip_address_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(address="198.18.1.255")),)),
     "attachments[0].ipv4.address"),
    ("netmask_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(netmask="255.0.255.0")),)),
     "attachments[0].ipv4.netmask"),
    ("netmask_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(netmask="33")),)),
     "attachments[0].ipv4.netmask"),
    ("gateway_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(gateway="198.18.1")),)),
     "attachments[0].ipv4.gateway"),
    ("gateway_outside_subnet",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(gateway="198.18.2.1")),)),
     "attachments[0].ipv4.gateway"),
    ("ipv6_gateway_not_default_route",
     lambda: setup(attachments=(att("vm200", "eth1", ipv6=static(
         "2001:db8::10", "64", "2001:db8::1")),)),
     "attachments[0].ipv6.gateway"),
    ("bond_too_few_slaves", lambda: setup(bonds=(bond(slaves=("eth4",)),)), "bonds[0].slaves"),
    ("bond_slave_invalid", lambda: setup(bonds=(bond(slaves=("eth4", "eth5.10")),)),
     "bonds[0].slaves"),
    ("bond_slave_invalid", lambda: setup(bonds=(bond(slaves=("eth4", "bond0")),)),
     "bonds[0].slaves"),
    ("nic_in_several_bonds", lambda: setup(bonds=(bond(slaves=("eth2", "eth4")),)),
     "bonds[0].slaves"),
    ("bond_slave_carries_networks",
     lambda: setup(bonds=(bond(slaves=("eth1", "eth4")),),
                   attachments=(att("vm200", "eth1"),)), "attachments[0]"),
    ("untagged_network_not_exclusive", lambda: setup(attachments=(att("untagged2", "bond0"),)),
     "attachments[0]"),
    ("vlan_id_not_unique", lambda: setup(attachments=(att("vm100b", "bond0"),)),
     "attachments[0]"),
    ("mtu_mismatch", lambda: setup(attachments=(att("jumbo", "bond0"),)), "attachments"),
    ("vm_network_on_bond_mode", lambda: setup(bonds=(bond("bond0", ("eth2", "eth3"), mode=5),)),
     "attachments"),
    ("vm_network_on_bond_mode",
     lambda: setup(bonds=(bond(mode=0),), attachments=(att("vm200", "bond1"),)),
     "attachments[0]"),
    ("qos_mixed", lambda: setup(attachments=(att("qos", "bond0"),)), "attachments"),
    # VMs and vNICs
    ("vnic_profile_name_length", lambda: profile(name=""), "name"),
    ("vnic_profile_name_not_unique", lambda: profile(name="vm100"), "name"),
    ("vnic_profile_non_vm_network", lambda: profile(network_is_vm=False), "network"),
    ("vnic_profile_non_vm_network", lambda: vnic(profile_network_is_vm=False), "profile"),
    ("vnic_profile_network_changed", lambda: profile(network_changed=True), "network"),
    ("vnic_name_required", lambda: vnic(name=" "), "name"),
    ("mac_address_invalid", lambda: vnic(mac="56:6f:1a:00:00:0g"), "mac"),
    ("mac_address_multicast", lambda: vnic(mac="ff:ff:ff:ff:ff:ff"), "mac"),
    ("mac_address_in_use", lambda: vnic(mac="56-6F-1A-00-00-01"), "mac"),
    ("mac_address_in_use", lambda: vnic(used_macs={"566F.1A00.0005"}), "mac"),
    ("vnic_type_invalid", lambda: vnic(vnic_type="ne2k_pci"), "type"),
    ("vnic_network_not_on_host", lambda: vnic(networks_on_host={MGMT}), "profile"),
    # Service-level rules
    ("network_other_datacenter", lambda: attach(network_datacenter="dc2"), "network"),
    ("network_already_in_cluster", lambda: attach(networks_in_cluster={"storage"}), "network"),
    ("management_role_unset", lambda: role_removal(new_roles={"display"}), "is_management"),
    ("management_network_removal", lambda: removal(is_management=True), "network"),
    ("network_used_by_vms", lambda: removal(vms_using=["vm1", "vm2"]), "network"),
    ("network_used_by_running_vms",
     lambda: r.check_network_leaving_hosts(network="storage", running_vms=["vm1"]), "network"),
    ("mac_pool_exhausted", lambda: mac_alloc(used={"56:6f:00:00:00:00", "56:6f:00:00:00:01"}),
     "mac"),
    ("vm_host_other_cluster", lambda: vm_check(host_cluster="c2"), "host"),
    ("vnic_network_not_on_host",
     lambda: vm_check(vnic_networks={"vm100"}, networks_on_host={MGMT}), "host"),
    ("host_key_fingerprint_mismatch",
     lambda: r.check_host_key_approval(host="h1", pending_fingerprint="SHA256:abc",
                                       given="SHA256:abd"), "fingerprint"),
]

# PASSING: (code, thunk) where the thunk is a valid near miss of that code's rule; the
# whole result must be empty.
PASSING = [
    ("datacenter_name_length", lambda: r.check_datacenter("d" * 40, [])),
    ("datacenter_name_not_unique", lambda: r.check_datacenter("Default2", ["Default"])),
    ("cluster_name_length", lambda: cluster(name="c" * 40)),
    ("cluster_name_not_unique", lambda: cluster(name="Other2")),
    ("mac_address_invalid", lambda: cluster(start="56-6F-1A-00-00-00")),
    ("mac_address_multicast", lambda: cluster(start="02:00:5e:00:00:01",
                                              end="02:00:5e:00:00:01")),
    ("mac_pool_range_reversed", lambda: cluster(end="56:6f:1a:00:00:00")),
    ("network_name_length", lambda: network(name="n" * 256, on_host_name="on0000000000000")),
    ("network_name_not_unique", lambda: network(name="Ovirtmgmt", on_host_name="Ovirtmgmt")),
    ("network_name_reserved_prefix", lambda: network(name="my_bond", on_host_name="my_bond")),
    ("network_name_clashes_on_host_name",
     lambda: network(name="on0123456789abd", on_host_name="on0123456789abd")),
    ("on_host_name_not_unique",
     lambda: network(name="my storage", on_host_name="on0123456789abd")),
    ("description_too_long", lambda: network(description="d" * 4000)),
    ("vlan_out_of_range", lambda: network(vlan=0) + network(vlan=4094)),
    ("mtu_out_of_range", lambda: network(mtu=0) + network(mtu=68) + network(mtu=65535)),
    ("stp_requires_vm_network", lambda: network(stp=True, vm_network=True)),
    ("label_invalid", lambda: network(label="Lab_1-a")),
    ("dns_servers_too_many", lambda: network(dns_servers=["198.18.0.1"] * 3)),
    ("dns_server_invalid", lambda: network(dns_servers=["2001:db8::53", "198.18.0.53"])),
    ("bond_name_invalid", lambda: r.check_bond(bond("bond_storage01"))),
    ("bond_mode_invalid", lambda: r.check_bond(bond(mode=6))),
    ("bond_options_invalid",
     lambda: r.check_bond(bond(mode=4, options=r.default_bond_options(4)))),
    ("bond_options_mode_mismatch",
     lambda: r.check_bond(bond(mode=4, options="mode=802.3ad miimon=100"))),
    ("role_unknown", lambda: cluster_networks()),
    ("role_not_exclusive",
     lambda: cluster_networks(r.assign_role(CLUSTER_NETS, "storage", c.ROLE_DISPLAY))),
    ("management_network_missing", lambda: cluster_networks()),
    ("management_network_not_required", lambda: cluster_networks()),
    ("management_role_locked",
     lambda: cluster_networks(r.assign_role(CLUSTER_NETS, "storage", c.ROLE_MANAGEMENT),
                              has_hosts=False, previous=CLUSTER_NETS)),
    ("management_network_detach", lambda: detach("display")),
    ("network_not_in_cluster", lambda: detach("storage")),
    ("network_rename_in_use", lambda: change(new=net("storage2"))),
    ("network_vm_flag_in_use",
     lambda: change(old=net("vm"), new=net("vm", vm_network=False), hosts_using=("h1",))),
    ("network_label_rename_in_use",
     lambda: change(new=net("storage"), nics_with_old_label=("h1/eth1",))),
    ("cluster_datacenter_immutable",
     lambda: r.check_parents_kept("cluster", {"datacenter": 1}, {"datacenter": 1})),
    ("network_datacenter_immutable",
     lambda: r.check_parents_kept("network", {"datacenter": 1}, {})),  # not edited
    ("cluster_network_immutable",
     lambda: r.check_parents_kept("cluster network", {"cluster": 1, "network": 5},
                                  {"cluster": 1, "network": 5})),
    # setup: valid near misses
    ("bond_listed_twice", lambda: setup(bonds=(bond(),))),
    ("bond_slave_listed_twice", lambda: setup(bonds=(bond(slaves=("eth4", "eth5")),))),
    ("bond_unknown", lambda: setup(removed_bonds=("bond0",),
                                   removed_attachments=("storage",),
                                   attachments=(att("vm100", "eth1"),))),
    ("interface_unknown", lambda: setup(attachments=(att("vm200", "eth1"),),
                                        labels={"bond0": frozenset({"x"})})),
    ("network_unknown", lambda: setup(attachments=(att("vm200", "eth1"),))),
    ("attachment_unknown", lambda: setup(removed_attachments=("storage",))),
    ("network_listed_twice", lambda: setup(attachments=(att("vm200", "eth1"),),
                                           removed_attachments=("storage",))),
    ("label_listed_twice",
     lambda: setup(labels={"eth1": frozenset({"x"}), "eth4": frozenset({"y"})})),
    ("management_network_removed", lambda: setup(attachments=(att(MGMT, "eth1", ipv4=DHCP),))),
    ("label_attachment_changed_by_hand",
     lambda: setup(labelled_host(), labels={"eth1": frozenset()},
                   removed_attachments=("labelled",))),
    ("network_in_use_by_vms", lambda: setup(attachments=(att("vm100", "eth1"),))),
    ("out_of_sync_not_synced",
     lambda: setup(out_of_sync_host(), attachments=(att("vm100", "bond0", ipv4=DHCP),),
                   synced=frozenset({"vm100"}))),
    ("bond_in_use", lambda: setup(removed_bonds=("bond0",),
                                  attachments=(att("storage", "eth1"), att("vm100", "eth1")))),
    ("label_on_several_interfaces",
     lambda: setup(labelled_host(), labels={"eth1": frozenset(), "eth4": frozenset({"lab"})})),
    ("label_on_bond_slave", lambda: setup(labels={"bond0": frozenset({"x"})})),
    ("label_on_vlan_device", lambda: setup(labels={"eth5": frozenset({"x"})})),
    ("attached_to_vlan_device", lambda: setup(attachments=(att("vm10", "eth5"),))),
    ("vlan_device_name_too_long", lambda: setup(attachments=(att("vm10", LONG_NIC),))),
    ("role_network_without_ip", lambda: setup(attachments=(att("display", "eth1", ipv4=DHCP),))),
    ("boot_protocol_invalid", lambda: setup(attachments=(att("vm200", "eth1", ipv4=DHCP),))),
    ("static_ip_incomplete",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(netmask="24")),))),
    ("ip_details_without_static",
     lambda: setup(attachments=(att("vm200", "eth1",
                                    ipv4=IpConfig(c.BOOT_DHCP, gateway="0.0.0.0")),))),
    ("ip_address_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(address="198.18.1.254")),))),
    ("netmask_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(netmask="255.255.254.0")),))),
    ("gateway_invalid",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(gateway="198.18.1.1")),))),
    ("gateway_outside_subnet",
     lambda: setup(attachments=(att("vm200", "eth1", ipv4=static(
         "198.18.1.10", "23", "198.18.0.1")),))),
    ("ipv6_gateway_not_default_route",
     lambda: setup(attachments=(att(MGMT, "eth0", ipv4=DHCP, ipv6=static(
         "2001:db8::10", "64", "2001:db8::1")),))),
    ("bond_too_few_slaves", lambda: setup(bonds=(bond(slaves=("eth4", "eth5")),))),
    ("bond_slave_invalid", lambda: setup(bonds=(bond(slaves=("eth4", "eth5")),))),
    ("nic_in_several_bonds",
     lambda: setup(bonds=(bond("bond0", ("eth2", "eth4")), bond(slaves=("eth3", "eth5"))))),
    ("bond_slave_carries_networks",
     lambda: setup(bonds=(bond(slaves=("eth1", "eth4")),),
                   attachments=(att("vm200", "bond1"),))),
    ("untagged_network_not_exclusive",
     lambda: setup(attachments=(att("untagged2", "eth1"), att("vm200", "eth1")))),
    ("vlan_id_not_unique", lambda: setup(attachments=(att("vm100b", "eth1"),))),
    # a VLAN-only interface may mix MTUs (rule 11)
    ("mtu_mismatch", lambda: setup(attachments=(att("jumbo", "eth1"), att("vm200", "eth1")))),
    ("vm_network_on_bond_mode", lambda: setup(bonds=(bond("bond0", ("eth2", "eth3"), mode=4),))),
    ("qos_mixed", lambda: setup(attachments=(att("qos", "eth1"),))),
    # VMs and vNICs
    ("vnic_profile_name_length", lambda: profile(name="p" * 256)),
    ("vnic_profile_name_not_unique", lambda: profile(name="VM100")),
    ("vnic_profile_non_vm_network", lambda: profile() + vnic()),
    ("vnic_profile_network_changed", lambda: profile()),
    ("vnic_name_required", lambda: vnic(name="nic2")),
    ("mac_address_in_use", lambda: vnic(mac="56:6F:1A:00:00:02")),
    ("vnic_type_invalid", lambda: [v for t in c.VNIC_TYPES for v in vnic(vnic_type=t)]),
    ("vnic_network_not_on_host",
     lambda: vnic(networks_on_host=None) + vnic(profile_network=None, networks_on_host=set())),
    ("network_other_datacenter", lambda: attach()),
    ("network_already_in_cluster", lambda: attach(networks_in_cluster={"display"})),
    ("management_role_unset", lambda: role_removal(new_roles={"management"})),
    ("management_network_removal", lambda: removal()),
    ("network_used_by_vms", lambda: removal(vms_using=[])),
    ("network_used_by_running_vms",
     lambda: r.check_network_leaving_hosts(network="storage", running_vms=[])),
    ("mac_pool_exhausted", lambda: mac_alloc(used={"56:6f:00:00:00:00"})),
    ("vm_host_other_cluster", lambda: vm_check() + vm_check(host=None, host_cluster=None)),
    ("vnic_network_not_on_host",
     lambda: vm_check(vnic_networks={"vm100"}, networks_on_host={MGMT, "vm100"})),
    ("host_key_fingerprint_mismatch",
     lambda: r.check_host_key_approval(host="h1", pending_fingerprint="SHA256:abc",
                                       given=" SHA256:abc ")),
]


def _describe(violations):
    return "\n".join(f"{v.code} [{v.field}] {v.message}" for v in violations)


@pytest.mark.parametrize(("code", "make", "field"), FAILING,
                         ids=[f"{code}-{i}" for i, (code, _m, _f) in enumerate(FAILING)])
def test_failing_case_reports_code(code, make, field):
    violations = make()
    matching = [v for v in violations if v.code == code]
    assert matching, f"expected {code}, got:\n{_describe(violations)}"
    if field is not None:
        assert field in {v.field for v in matching}, _describe(matching)
    for v in matching:
        assert v.message and v.code in r.CODES


@pytest.mark.parametrize(("code", "make"), PASSING,
                         ids=[f"{code}-{i}" for i, (code, _m) in enumerate(PASSING)])
def test_passing_case_is_clean(code, make):
    violations = make()
    assert violations == [], _describe(violations)


def test_every_code_has_cases():
    assert {code for code, _m, _f in FAILING} == set(r.CODES)
    assert {code for code, _m in PASSING} == set(r.CODES)


def test_codes_are_stable_snake_case():
    for code, description in r.CODES.items():
        assert code == code.lower() and code.replace("_", "").isalnum(), code
        assert description


def test_undeclared_code_is_refused():
    with pytest.raises(AssertionError):
        r._v("no_such_code", "name", "message")


# --- Setup: several rules at once, interfaces named -------------------------------------


def test_all_violations_are_reported_at_once():
    violations = setup(
        bonds=(bond(slaves=("eth4",)),),  # bond_too_few_slaves
        removed_attachments=(MGMT, "vm100"),  # management_network_removed, network_in_use_by_vms
        attachments=(att("untagged2", "bond0"),  # untagged_network_not_exclusive
                     att("vm200", "eth1", ipv4=static(gateway="198.18.9.1"))),  # outside subnet
    )
    codes = sorted(v.code for v in violations)
    assert codes == sorted(["bond_too_few_slaves", "management_network_removed",
                            "network_in_use_by_vms", "untagged_network_not_exclusive",
                            "gateway_outside_subnet"]), _describe(violations)
    assert all(v.interface for v in violations), _describe(violations)


def test_untagged_message_names_both_networks():
    [v] = setup(attachments=(att("untagged2", "bond0"),))
    assert v.interface == "bond0"
    assert v.message == ("Interface bond0 already carries the untagged network storage; "
                         "untagged2 would be a second one.")


def test_bond_slave_carries_existing_networks():
    """Enslaving a NIC that keeps its networks is refused (the networks stay on it)."""
    host = make_host()
    host = replace(host, attachments=dict(host.attachments, vm200=att("vm200", "eth1")))
    violations = setup(host, bonds=(bond(slaves=("eth1", "eth4")),))
    assert [v.code for v in violations] == ["bond_slave_carries_networks"]
    assert violations[0].interface == "eth1"


def test_management_network_lost_through_label_is_reported():
    host = make_host(networks=dict(NETWORKS, **{MGMT: replace(NETWORKS[MGMT], label="m")}))
    host = replace(host,
                   nics=dict(host.nics, eth0=NicData("eth0", labels=frozenset({"m"}))),
                   attachments=dict(host.attachments,
                                    **{MGMT: att(MGMT, "eth0", ipv4=DHCP, via_label=True)}))
    violations = setup(host, labels={"eth0": frozenset()})
    assert [(v.code, v.field) for v in violations] == [("management_network_removed",
                                                        "attachments")]


def test_labelled_role_network_needs_ip_when_propagated():
    host = make_host(networks=dict(NETWORKS, display=replace(NETWORKS["display"], label="d")))
    violations = setup(host, labels={"eth1": frozenset({"d"})})
    assert [(v.code, v.field, v.interface) for v in violations] == [
        ("role_network_without_ip", "attachments", "eth1")]


# --- apply_setup_request ----------------------------------------------------------------


def apply(host=None, **request):
    return r.apply_setup_request(host or make_host(), SetupRequest(**request))


def test_apply_builds_bonds_and_attachments():
    result = apply(bonds=(bond(),), removed_attachments=("storage",),
                   attachments=(att("vm200", "bond1"), att("vm100", "eth1")))
    assert set(result.bonds) == {"bond0", "bond1"}
    assert set(result.attachments) == {MGMT, "vm100", "vm200"}
    assert result.attachments["vm100"].interface == "eth1"
    assert result.attachments["vm200"].interface == "bond1"
    assert set(apply(removed_bonds=("bond0",)).bonds) == set()


def test_labelling_a_nic_attaches_labelled_network():
    result = apply(labels={"eth1": frozenset({"lab"})})
    assert result.nics["eth1"].labels == {"lab"}
    assert result.attachments["labelled"] == att("labelled", "eth1", via_label=True)


def test_labelling_a_bond_attaches_labelled_network():
    result = apply(labels={"bond0": frozenset({"lab"})})
    assert result.bonds["bond0"].labels == {"lab"}
    assert result.attachments["labelled"].interface == "bond0"


def test_removing_the_label_detaches():
    result = apply(labelled_host(), labels={"eth1": frozenset()})
    assert "labelled" not in result.attachments


def test_moving_the_label_moves_the_network():
    host = labelled_host()
    ip = static("198.18.5.10", "24")
    host = replace(host, attachments=dict(host.attachments,
                                          labelled=att("labelled", "eth1", ipv4=ip,
                                                       via_label=True)))
    request = dict(labels={"eth1": frozenset(), "eth4": frozenset({"lab"})})
    result = apply(host, **request)
    assert result.attachments["labelled"] == att("labelled", "eth4", ipv4=ip, via_label=True)
    assert setup(host, **request) == []


def test_label_propagation_ignores_networks_outside_the_cluster():
    host = make_host(networks=dict(NETWORKS, outside=replace(NETWORKS["outside"], label="o")))
    assert "outside" not in apply(host, labels={"eth1": frozenset({"o"})}).attachments


def test_manual_attachment_of_labelled_network_becomes_label_driven():
    result = apply(labels={"eth1": frozenset({"lab"})}, attachments=(att("labelled", "eth1"),))
    assert result.attachments["labelled"].via_label


def test_removing_a_bond_drops_its_labels_and_label_attachments():
    host = make_host()
    host = replace(host, bonds={"bond0": bond("bond0", ("eth2", "eth3"), labels={"lab"})},
                   attachments=dict(host.attachments,
                                    labelled=att("labelled", "bond0", via_label=True)))
    request = dict(removed_bonds=("bond0",), removed_attachments=("storage", "vm100"))
    assert "labelled" not in apply(host, **request).attachments
    violations = setup(host, **request)
    assert [v.code for v in violations] == ["network_in_use_by_vms"]


def test_synced_attachments_are_no_longer_out_of_sync():
    host = out_of_sync_host()
    assert not apply(host, synced=frozenset({"vm100"})).attachments["vm100"].out_of_sync
    assert apply(host).attachments["vm100"].out_of_sync
    flagged = att("vm100", "bond0", ipv4=DHCP, sync=True)
    assert not apply(host, attachments=(flagged,)).attachments["vm100"].out_of_sync
    assert setup(host, attachments=(flagged,)) == []


def test_apply_leaves_the_host_untouched():
    host = make_host()
    before = repr(host)
    apply(host, bonds=(bond(),), removed_bonds=("bond0",), labels={"eth1": frozenset({"lab"})})
    assert repr(host) == before


# --- Setup at scale ---------------------------------------------------------------------


def big_host_and_request() -> tuple[HostData, SetupRequest]:
    """64 NICs, 16 bonds of 2 slaves, 400 VLAN networks: 12 on each bond, 7 on each of the
    32 free NICs (VLAN-only interfaces, MTUs mixed), plus the management network."""
    nics = {f"eth{i}": NicData(f"eth{i}") for i in range(64)}
    networks = {MGMT: net(MGMT, required=True,
                          roles=frozenset({c.ROLE_MANAGEMENT, c.ROLE_DEFAULT_ROUTE}))}
    bonds = tuple(bond(f"bond{b}", (f"eth{2 * b}", f"eth{2 * b + 1}"), mode=4)
                  for b in range(16))
    interfaces = [b.name for b in bonds for _ in range(12)] + \
                 [f"eth{32 + n}" for n in range(32) for _ in range(7)]
    attachments = []
    for i in range(400):
        name = f"vlan{100 + i}"
        networks[name] = net(name, vlan=100 + i, mtu=9000 if i % 2 else 0, required=i < 50)
        ip = static(f"198.18.{i // 200}.{i % 200 + 10}", "16") if i % 4 == 0 else IpConfig()
        attachments.append(att(name, interfaces[i], ipv4=ip))
    host = HostData(name="big", cluster="cl1", nics=nics, networks=networks,
                    attachments={MGMT: att(MGMT, "eth63", ipv4=DHCP)})
    request = SetupRequest(bonds=bonds, attachments=tuple(attachments),
                           labels={"bond0": frozenset({"a"}), "eth40": frozenset({"b"})})
    return host, request


def test_big_host_validates():
    host, request = big_host_and_request()
    assert r.validate_setup_networks(host, request) == []
    result = r.apply_setup_request(host, request)
    assert len(result.attachments) == 401 and len(result.bonds) == 16
    assert r.host_compliance(result) == (True, "")


def test_big_host_reports_each_broken_interface():
    host, request = big_host_and_request()
    broken = replace(request, attachments=request.attachments + (att(MGMT, "bond3"),))
    codes = [v.code for v in r.validate_setup_networks(host, broken)]
    # untagged management moved, without an address, onto a bond whose VLAN networks
    # mix MTUs 1500 and 9000
    assert sorted(codes) == ["mtu_mismatch", "role_network_without_ip"]


# --- Names and helpers ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("ovirtmgmt", "ovirtmgmt"),
    ("a" * 15, "a" * 15),
    ("a" * 16, "on0123456789abc"),
    ("my storage", "on0123456789abc"),
    ("stor.age", "on0123456789abc"),
])
def test_on_host_name(name, expected):
    assert r.on_host_name(name, "0123-4567-89ab-cdef-0000") == expected


def test_vlan_device_name_and_bond_defaults():
    assert r.vlan_device_name("bond0", 100) == "bond0.100"
    assert r.default_bond_options(4) == "mode=4 miimon=100 xmit_hash_policy=2"
    assert r.default_bond_options(1) == "miimon=100"


def test_expected_base_mtu():
    assert r.expected_base_mtu([]) == c.MTU_DEFAULT
    assert r.expected_base_mtu([net("a", vlan=1), net("b", vlan=2, mtu=9000)]) == 9000
    assert r.expected_base_mtu([net("a", vlan=1, mtu=1400)]) == 1400


def test_assign_role_takes_it_from_the_holder():
    result = r.assign_role(CLUSTER_NETS, "storage", c.ROLE_DISPLAY)
    roles = {a.network: a.roles for a in result}
    assert roles["storage"] == {c.ROLE_DISPLAY}
    assert roles["display"] == frozenset()
    assert CLUSTER_NETS[1].roles == {c.ROLE_DISPLAY}  # pure
    moved = {a.network: a for a in r.assign_role(CLUSTER_NETS, "storage", c.ROLE_MANAGEMENT)}
    assert moved["storage"].required and c.ROLE_MANAGEMENT in moved["storage"].roles
    with pytest.raises(ValueError):
        r.assign_role(CLUSTER_NETS, "nope", c.ROLE_DISPLAY)


def test_detach_hands_roles_back_to_management():
    assignments = r.assign_role(CLUSTER_NETS, "storage", c.ROLE_MIGRATION)
    result, violations = r.detach_from_cluster(assignments, "storage")
    assert violations == []
    roles = {a.network: a.roles for a in result}
    assert set(roles) == {MGMT, "display"}
    assert roles[MGMT] == {c.ROLE_MANAGEMENT, c.ROLE_DEFAULT_ROUTE, c.ROLE_MIGRATION}
    result, _ = r.detach_from_cluster(CLUSTER_NETS, "display")
    assert c.ROLE_DISPLAY in next(a for a in result if a.network == MGMT).roles


def test_management_role_may_stay_while_hosts_exist():
    assert cluster_networks(has_hosts=True, previous=CLUSTER_NETS) == []


@pytest.mark.parametrize(("new", "hosts", "expected"), [
    (net("storage", mtu=9000), ("h1",), True),
    (net("storage", vlan=5), ("h1",), True),
    (net("storage", vm_network=False), ("h1",), True),
    (net("storage", mtu=9000), (), False),
    (net("storage", mtu=1500), ("h1",), False),  # 0 means 1500
    (net("storage", label="x"), ("h1",), False),
])
def test_change_needs_push(new, hosts, expected):
    assert r.change_needs_push(NetworkChange(old=net("storage"), new=new,
                                             hosts_using=hosts)) is expected


def test_removing_or_adding_a_label_is_allowed_while_carried():
    assert change(new=net("storage"), nics_with_old_label=("h1/eth1",)) == []
    assert change(old=net("storage"), new=net("storage", label="x"),
                  nics_with_old_label=("h1/eth1",)) == []


# --- Host status ------------------------------------------------------------------------


def test_host_complies():
    assert r.host_compliance(make_host()) == (True, "")


def test_host_missing_required_networks():
    host = make_host(networks=dict(NETWORKS, a=net("a", required=True),
                                   b=net("b", required=True),
                                   c=net("c", required=True, in_cluster=False)))
    ok, reason = r.host_compliance(host)
    assert not ok
    assert reason == ("Host host1 does not comply with the cluster cl1 networks, the following "
                      "networks are missing on host: 'a', 'b'")


def test_host_vm_network_without_bridge():
    ok, reason = r.host_compliance(make_host(), bridged={"vm100": False, "storage": False})
    assert not ok and "'vm100'" in reason and "storage" not in reason


def test_host_required_network_on_down_nic():
    host = make_host()
    down = replace(host, nics=dict(host.nics, eth0=NicData("eth0", link_up=False)))
    ok, reason = r.host_compliance(down)
    assert not ok and "'eth0'" in reason and MGMT in reason
    # a bond is down only when every slave is
    one_slave_down = replace(host, nics=dict(host.nics, eth2=NicData("eth2", link_up=False)))
    assert r.host_compliance(one_slave_down) == (True, "")
    both = replace(host, nics=dict(host.nics, eth2=NicData("eth2", link_up=False),
                                   eth3=NicData("eth3", link_up=False)))
    ok, reason = r.host_compliance(both)
    assert not ok and "'bond0' (storage)" in reason


@pytest.mark.parametrize(("required", "lacking", "expected"), [
    (True, [], True), (True, ["h1"], False), (False, ["h1"], True)])
def test_required_network_operational(required, lacking, expected):
    assert r.required_network_operational(required, lacking) is expected


# --- MAC addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(("mac", "expected"), [
    ("56:6F:1A:00:00:01", "56:6f:1a:00:00:01"),
    ("56-6f-1a-00-00-01", "56:6f:1a:00:00:01"),
    ("566f.1a00.0001", "56:6f:1a:00:00:01"),
    ("566f1a000001", "56:6f:1a:00:00:01"),
    (" 56:6f:1a:00:00:01 ", "56:6f:1a:00:00:01"),
    ("56:6f:1a-00:00:01", None),
    ("56:6f:1a:00:00", None),
    ("56:6f:1a:00:00:0g", None),
    ("", None),
])
def test_normalize_mac(mac, expected):
    assert r.normalize_mac(mac) == expected


def test_allocate_mac_lowest_free():
    start, end = "56:6f:1a:00:00:00", "56:6f:1a:00:00:03"
    assert r.allocate_mac(start, end, []) == start
    assert r.allocate_mac(start, end, ["56:6F:1A:00:00:00", "56:6f:1a:00:00:02"]) == \
        "56:6f:1a:00:00:01"
    used = [f"56:6f:1a:00:00:0{i}" for i in range(4)]
    assert r.allocate_mac(start, end, used) is None
    assert r.allocate_mac(start, end, used + ["junk", "00:00:00:00:00:01"]) is None


def test_allocate_mac_skips_multicast_and_zero():
    assert r.allocate_mac("00:ff:ff:ff:ff:ff", "02:00:00:00:00:05",
                          ["00:ff:ff:ff:ff:ff"]) == "02:00:00:00:00:00"
    assert r.allocate_mac("00:00:00:00:00:00", "00:00:00:00:00:05", []) == "00:00:00:00:00:01"


def test_allocate_mac_large_pool():
    used = {f"56:6f:1a:00:{i >> 8:02x}:{i & 0xff:02x}" for i in range(65_000)}
    used.discard("56:6f:1a:00:fd:e7")
    assert r.allocate_mac("56:6f:1a:00:00:00", "56:6f:1a:00:ff:ff", used) == "56:6f:1a:00:fd:e7"
    used.add("56:6f:1a:00:fd:e7")
    assert r.allocate_mac("56:6f:1a:00:00:00", "56:6f:1a:00:ff:ff", used) == "56:6f:1a:00:fd:e8"


def test_vnic_mac_outside_pool_and_empty_mac_are_allowed():
    assert vnic(mac="02:00:00:00:00:01") == []
    assert vnic(mac="") == []
