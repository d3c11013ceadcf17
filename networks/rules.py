"""Every validation rule of the product, as pure functions (RULES.md is the source).

No ORM and no Django imports: plain data in, a list of `Violation` out. Services build the
plain data from the database, call these functions, and turn violations into field errors
(forms, admin), 400 answers (API) or refusals (tasks). Each violation has a stable
snake_case `code` that the UI, the API and the tests rely on; never rename one.

The dataclasses below are the contract between the services and the rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from networks import constants as c


@dataclass(frozen=True)
class Violation:
    """One broken rule: a stable code, the field it concerns, and a message naming objects.

    `interface` names the host interface the violation concerns, when there is one, so that
    the setup page can show it beside that interface.
    """

    code: str
    field: str
    message: str
    interface: str | None = None

    def as_dict(self) -> dict:
        data = {"field": self.field, "code": self.code, "message": self.message}
        if self.interface:
            data["interface"] = self.interface
        return data


# --- Plain data: the objects the rules reason about -------------------------------------


@dataclass(frozen=True)
class NetworkData:
    """A logical network as the rules see it (one data center).

    `roles` are the roles it holds in the cluster of the host being checked; `in_cluster`
    tells whether it is attached to that cluster at all; `required` whether it is required
    there. `has_qos` is true when the network defines host network QoS.
    """

    name: str
    vm_network: bool = True
    vlan: int | None = None
    mtu: int = 0
    label: str | None = None
    in_cluster: bool = True
    required: bool = False
    roles: frozenset[str] = frozenset()
    has_qos: bool = False

    @property
    def effective_mtu(self) -> int:
        return self.mtu or c.MTU_DEFAULT


@dataclass(frozen=True)
class NicData:
    """A host NIC as reported. `is_vlan_device` marks reported VLAN devices (eth1.100)."""

    name: str
    labels: frozenset[str] = frozenset()
    is_vlan_device: bool = False
    link_up: bool = True


@dataclass(frozen=True)
class BondData:
    """A bond: wanted (in a request) or stored. `mode` is the bonding mode number 0-6."""

    name: str
    mode: int = 1
    options: str = ""
    slaves: tuple[str, ...] = ()
    labels: frozenset[str] = frozenset()


@dataclass(frozen=True)
class IpConfig:
    """One address family of an attachment. For IPv4 `netmask` is dotted or a prefix
    length as text; for IPv6 `netmask` holds the prefix length as text."""

    boot_protocol: str = c.BOOT_NONE
    address: str = ""
    netmask: str = ""
    gateway: str = ""


@dataclass(frozen=True)
class AttachmentData:
    """A network attached to a NIC or bond of a host.

    `via_label` marks attachments made by label propagation; `out_of_sync` is the last
    computed sync state; `sync` is the request's flag to push the portal's view (override).
    """

    network: str
    interface: str
    ipv4: IpConfig = IpConfig()
    ipv6: IpConfig = IpConfig()
    via_label: bool = False
    out_of_sync: bool = False
    sync: bool = False


@dataclass(frozen=True)
class HostData:
    """A host as stored: what a setup request is checked against.

    `networks` holds every network of the host's data center by name (attached to the
    cluster or not); `networks_used_by_running_vms` names networks that running VMs on this
    host use through their vNICs.
    """

    name: str
    cluster: str
    nics: dict[str, NicData] = field(default_factory=dict)
    bonds: dict[str, BondData] = field(default_factory=dict)
    attachments: dict[str, AttachmentData] = field(default_factory=dict)
    networks: dict[str, NetworkData] = field(default_factory=dict)
    networks_used_by_running_vms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SetupRequest:
    """One host's setup-networks request, validated as a whole.

    - `bonds`: bonds to create or change (full new definition);
    - `removed_bonds`: names of bonds to remove;
    - `attachments`: attachments to create or change (full new definition, keyed by
      network; the same network listed twice is itself a violation);
    - `removed_attachments`: names of networks to detach;
    - `labels`: interface name -> the complete new set of labels of that NIC or bond
      (interfaces not listed keep their labels);
    - `synced`: names of networks whose out-of-sync attachment is pushed as it is.
    """

    bonds: tuple[BondData, ...] = ()
    removed_bonds: tuple[str, ...] = ()
    attachments: tuple[AttachmentData, ...] = ()
    removed_attachments: tuple[str, ...] = ()
    labels: dict[str, frozenset[str]] = field(default_factory=dict)
    synced: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NetworkChange:
    """A network's fields before and after an edit, and what uses it now."""

    old: NetworkData
    new: NetworkData
    hosts_using: tuple[str, ...] = ()
    vms_using: tuple[str, ...] = ()
    vnics_using: int = 0
    nics_with_old_label: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterNetworkData:
    """A network's assignment to a cluster: required flag and roles."""

    network: str
    required: bool = True
    roles: frozenset[str] = frozenset()


# --- Codes ------------------------------------------------------------------------------

CODES: dict[str, str] = {
    # Names and limits
    "datacenter_name_length": "A data center name has 1-40 characters.",
    "datacenter_name_not_unique": "Data center names are unique (case-insensitive).",
    "cluster_name_length": "A cluster name has 1-40 characters.",
    "cluster_name_not_unique": "Cluster names are unique in their data center (case-insensitive).",
    "mac_address_invalid": "A MAC address is six hex octets and not all zero.",
    "mac_address_multicast": "A MAC address must be unicast (group bit clear).",
    "mac_pool_range_reversed": "A MAC pool range starts at or below its end.",
    "network_name_length": "A network name has 1-256 characters.",
    "network_name_not_unique": "Network names are unique in their data center.",
    "network_name_reserved_prefix": "A network name must not start with 'bond' (any case).",
    "network_name_clashes_on_host_name": "A network name must not equal another network's "
    "on-host name.",
    "on_host_name_not_unique": "On-host (bridge) names are unique in the data center.",
    "description_too_long": "A description has at most 4000 characters.",
    "vlan_out_of_range": "A VLAN id is empty (untagged) or 0-4094.",
    "mtu_out_of_range": "An MTU is 0 (the default) or 68-65535.",
    "stp_requires_vm_network": "STP is only possible on a VM network (a bridge).",
    "label_invalid": "A label matches [0-9A-Za-z_-]+ and has at most 50 characters.",
    "dns_servers_too_many": "A network has at most 3 DNS servers.",
    "dns_server_invalid": "A DNS server is an IPv4 or IPv6 address.",
    "bond_name_invalid": "A bond name matches ^bond\\w+$ and has at most 15 characters.",
    "bond_mode_invalid": "A bond mode is 0-6.",
    "bond_options_invalid": "Bond options are space-separated key=value pairs, keys unique.",
    "bond_options_mode_mismatch": "A mode= inside the bond options agrees with the bond mode.",
    # Data center and cluster
    "role_unknown": "A cluster role is one of management, display, migration, default route.",
    "role_not_exclusive": "Each cluster role is held by at most one network.",
    "management_network_missing": "A cluster has exactly one management network.",
    "management_network_not_required": "The management network of a cluster is required.",
    "management_role_locked": "The management role moves only while the cluster has no hosts.",
    "management_network_detach": "The management network cannot be detached from its cluster.",
    "network_not_in_cluster": "The network is not attached to the cluster.",
    "cluster_datacenter_immutable": "A cluster stays in the data center it was created in.",
    "network_datacenter_immutable": "A network stays in the data center it was created in.",
    "cluster_network_immutable": "A cluster network keeps its cluster and network (detach and "
    "attach instead).",
    # Changing a network
    "network_rename_in_use": "A network used by hosts or VMs cannot be renamed.",
    "network_vm_flag_in_use": "A network used by vNICs cannot stop being a VM network.",
    "network_label_rename_in_use": "A network label carried by host NICs cannot be renamed.",
    # Setting up a host's networks
    "bond_listed_twice": "A bond is listed once in a request (changed or removed).",
    "bond_slave_listed_twice": "A NIC is listed once among a bond's slaves.",
    "bond_unknown": "A removed bond exists on the host.",
    "interface_unknown": "The interface exists on the host (NIC or bond).",
    "network_unknown": "The network exists in the host's data center.",
    "attachment_unknown": "A detached network is attached to the host.",
    "network_listed_twice": "A network is listed once in a request (attached or detached).",
    "label_listed_twice": "A label is given to one interface only in a request.",
    "label_on_several_interfaces": "A label is carried by at most one interface of a host.",
    "label_on_bond_slave": "A bond slave carries no labels (label the bond).",
    "label_on_vlan_device": "A VLAN device carries no labels.",
    "management_network_removed": "The management network stays attached to the host.",
    "label_attachment_changed_by_hand": "A network attached through a label follows the label; "
    "it is not removed or moved by hand.",
    "network_in_use_by_vms": "A network used by running VMs on the host stays attached.",
    "out_of_sync_not_synced": "Editing an out-of-sync attachment requires syncing it.",
    "bond_in_use": "A bond still carrying networks cannot be removed.",
    "attached_to_vlan_device": "Networks attach to a NIC or bond, never to a VLAN device.",
    "vlan_device_name_too_long": "The VLAN device name <base>.<vlan> fits in 15 characters.",
    "role_network_without_ip": "A role network needs a boot protocol other than none.",
    "boot_protocol_invalid": "A boot protocol is none, dhcp or static.",
    "static_ip_incomplete": "A static address needs an address and a netmask or prefix.",
    "ip_details_without_static": "DHCP or none carries no address, netmask or gateway.",
    "ip_address_invalid": "An address is a usable unicast address of the right family.",
    "netmask_invalid": "A netmask is a contiguous dotted mask or a prefix length.",
    "gateway_invalid": "A gateway is a unicast address of the right family.",
    "gateway_outside_subnet": "A gateway lies inside the attachment's subnet.",
    "ipv6_gateway_not_default_route": "Only the default-route network has an IPv6 gateway.",
    "bond_too_few_slaves": "A bond has at least 2 slaves.",
    "bond_slave_invalid": "A bond slave is a NIC, not a bond or a VLAN device.",
    "nic_in_several_bonds": "A NIC belongs to at most one bond.",
    "bond_slave_carries_networks": "A bond slave carries no networks.",
    "untagged_network_not_exclusive": "An interface carries at most one untagged network.",
    "vlan_id_not_unique": "VLAN ids on one interface are unique.",
    "mtu_mismatch": "With an untagged network, all networks of an interface share one MTU.",
    "vm_network_on_bond_mode": "VM networks are not allowed on bonds in mode 0, 5 or 6.",
    "qos_mixed": "On one interface either all networks have host QoS or none do.",
    # VMs and vNICs
    "vnic_profile_name_length": "A vNIC profile name has 1-256 characters.",
    "vnic_profile_name_not_unique": "A vNIC profile name is unique per network.",
    "vnic_profile_non_vm_network": "vNIC profiles and vNICs exist only on VM networks.",
    "vnic_profile_network_changed": "A vNIC profile's network cannot change.",
    "vnic_name_required": "A vNIC has a name.",
    "mac_address_in_use": "A MAC address is unique in its MAC pool.",
    "vnic_type_invalid": "A vNIC type is virtio, e1000, e1000e or rtl8139.",
    "vnic_network_not_on_host": "A vNIC connects only to a network implemented on the VM's host.",
    # Service-level rules (checked with data the services gather)
    "network_other_datacenter": "a network joins only clusters of its own data center",
    "network_already_in_cluster": "a network is attached to a cluster at most once",
    "management_role_unset": "the management role only moves to another network",
    "management_network_removal": "the management network cannot be removed",
    "network_used_by_vms": "a network whose vNIC profiles VMs use cannot be removed",
    "network_used_by_running_vms": "running VMs keep the networks they use on their host",
    "mac_pool_exhausted": "a vNIC needs a free MAC address in its cluster's pool",
    "vm_host_other_cluster": "a VM runs only on a host of its own cluster",
    "host_key_fingerprint_mismatch": "an approval names the fingerprint of the pending key",
}


def _v(code: str, field: str, message: str, interface: str | None = None) -> Violation:
    assert code in CODES, f"undeclared violation code {code!r}"
    return Violation(code=code, field=field, message=message, interface=interface)


def _names(names: Iterable[str], limit: int = 5) -> str:
    """'a', 'b', 'c' (and 2 more): for messages that name many objects."""
    items = list(names)
    text = ", ".join(f"'{n}'" for n in items[:limit])
    if len(items) > limit:
        text += f" (and {len(items) - limit} more)"
    return text


# --- Names and limits -------------------------------------------------------------------

_ON_HOST_RE = re.compile(c.ON_HOST_NAME_PATTERN)
_LABEL_RE = re.compile(c.LABEL_PATTERN)
_BOND_NAME_RE = re.compile(c.BOND_NAME_PATTERN, re.ASCII)


def on_host_name(network_name: str, network_uuid_hex: str) -> str:
    """The bridge/device name of a network on hosts: its name when that is a valid short
    interface name, else 'on' + the first 13 alphanumerics of its UUID (15 characters)."""
    if _ON_HOST_RE.match(network_name):
        return network_name
    alnum = "".join(ch for ch in network_uuid_hex if ch.isascii() and ch.isalnum())
    return c.ON_HOST_NAME_PREFIX + alnum[: c.ON_HOST_UUID_CHARS]


def vlan_device_name(base: str, vlan: int) -> str:
    return f"{base}.{vlan}"


def default_bond_options(mode: int) -> str:
    if mode == c.BOND_MODE_LACP:
        return f"mode={c.BOND_MODE_LACP} miimon=100 xmit_hash_policy=2"
    return "miimon=100"


def _check_name(name: str, max_len: int, code: str, what: str) -> list[Violation]:
    """1..max_len characters; a name of blanks only counts as empty."""
    if not name or not name.strip():
        return [_v(code, "name", f"A {what} needs a name (1 to {max_len} characters).")]
    if len(name) > max_len:
        return [_v(code, "name", f"The {what} name '{name[:40]}...' has {len(name)} "
                                 f"characters; at most {max_len} are allowed.")]
    return []


def check_datacenter(name: str, other_names: Iterable[str]) -> list[Violation]:
    """`other_names`: the other data centers (not this one). Uniqueness ignores case:
    'Prod' and 'prod' side by side in a portal tree are a mistake, not two sites."""
    out = _check_name(name, c.DATACENTER_NAME_MAX, "datacenter_name_length", "data center")
    folded = name.casefold()
    if any(other.casefold() == folded for other in other_names):
        out.append(_v("datacenter_name_not_unique", "name",
                      f"A data center named '{name}' already exists."))
    return out


def check_cluster(name: str, other_names_in_dc: Iterable[str], mac_pool_start: str,
                  mac_pool_end: str) -> list[Violation]:
    """Name (unique in the data center, ignoring case, like data centers) and the MAC pool
    range: both ends valid unicast MACs, start <= end."""
    out = _check_name(name, c.CLUSTER_NAME_MAX, "cluster_name_length", "cluster")
    folded = name.casefold()
    if any(other.casefold() == folded for other in other_names_in_dc):
        out.append(_v("cluster_name_not_unique", "name",
                      f"A cluster named '{name}' already exists in this data center."))
    start = _check_mac(mac_pool_start, "mac_pool_start", out)
    end = _check_mac(mac_pool_end, "mac_pool_end", out)
    if start is not None and end is not None and start > end:
        out.append(_v("mac_pool_range_reversed", "mac_pool_end",
                      f"The MAC pool range ends at {mac_pool_end}, before its start "
                      f"{mac_pool_start}."))
    return out


def check_network(*, name: str, description: str, vlan: int | None, mtu: int,
                  vm_network: bool, stp: bool, label: str | None,
                  dns_servers: Sequence[str], on_host_name: str, other_names: Iterable[str],
                  other_on_host_names: Iterable[str]) -> list[Violation]:
    """Every 'Names and limits' rule of one network (RULES.md). Names compare
    case-sensitively, like the Linux interface names they become."""
    out = _check_name(name, c.NETWORK_NAME_MAX, "network_name_length", "network")
    others = set(other_names)
    others_on_host = set(other_on_host_names)
    if name in others:
        out.append(_v("network_name_not_unique", "name",
                      f"A network named '{name}' already exists in this data center."))
    elif name in others_on_host:
        out.append(_v("network_name_clashes_on_host_name", "name",
                      f"'{name}' is already the on-host name of another network of this "
                      f"data center."))
    elif on_host_name and on_host_name in others_on_host:
        out.append(_v("on_host_name_not_unique", "on_host_name",
                      f"The on-host name '{on_host_name}' of network '{name}' is already used "
                      f"by another network of this data center."))
    if name[:4].lower() == "bond":
        out.append(_v("network_name_reserved_prefix", "name",
                      f"The network name '{name}' starts with 'bond', which is reserved for "
                      f"bond devices."))
    if description and len(description) > c.DESCRIPTION_MAX:
        out.append(_v("description_too_long", "description",
                      f"The description of network '{name}' has {len(description)} characters; "
                      f"at most {c.DESCRIPTION_MAX} are allowed."))
    if vlan is not None and (not _is_int(vlan) or not c.VLAN_MIN <= vlan <= c.VLAN_MAX):
        out.append(_v("vlan_out_of_range", "vlan",
                      f"The VLAN id {vlan} of network '{name}' is outside {c.VLAN_MIN}-"
                      f"{c.VLAN_MAX}; leave it empty for an untagged network."))
    if not _is_int(mtu) or (mtu != 0 and not c.MTU_MIN <= mtu <= c.MTU_MAX):
        out.append(_v("mtu_out_of_range", "mtu",
                      f"The MTU {mtu} of network '{name}' must be 0 (the default, "
                      f"{c.MTU_DEFAULT}) or {c.MTU_MIN}-{c.MTU_MAX}."))
    if stp and not vm_network:
        out.append(_v("stp_requires_vm_network", "stp",
                      f"Network '{name}' is not a VM network and has no bridge, so STP "
                      f"cannot be enabled."))
    if label:
        out += check_label(label, "label")
    servers = list(dns_servers or ())
    if len(servers) > c.DNS_SERVERS_MAX:
        out.append(_v("dns_servers_too_many", "dns_servers",
                      f"Network '{name}' has {len(servers)} DNS servers; at most "
                      f"{c.DNS_SERVERS_MAX} are honoured."))
    for server in servers:
        if _parse_ip(server) is None:
            out.append(_v("dns_server_invalid", "dns_servers",
                          f"The DNS server '{server}' of network '{name}' is not an IPv4 or "
                          f"IPv6 address."))
    return out


def check_label(label: str, field: str) -> list[Violation]:
    """One network or interface label: [0-9A-Za-z_-]+, at most LABEL_MAX characters."""
    if not isinstance(label, str) or not _LABEL_RE.match(label) or len(label) > c.LABEL_MAX:
        return [_v("label_invalid", field,
                   f"The label '{label}' may only hold letters, digits, '_' and '-' "
                   f"(1 to {c.LABEL_MAX} characters).")]
    return []


def _bond_mode_from_option(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    for number, kernel_name in c.BOND_MODES.items():
        if kernel_name == value:
            return number
    return None


def check_bond(bond: BondData, field_prefix: str = "bonds") -> list[Violation]:
    """The bond's own fields; fields are "<field_prefix>.name|mode|options". A mode= in the
    options may be the number or the kernel name (mode=802.3ad)."""
    out: list[Violation] = []
    name = bond.name
    if not _BOND_NAME_RE.match(name) or len(name) > c.IFNAME_MAX:
        out.append(_v("bond_name_invalid", f"{field_prefix}.name",
                      f"The bond name '{name}' must be 'bond' followed by letters, digits or "
                      f"'_' ({c.IFNAME_MAX} characters at most), e.g. bond0.", name))
    mode_ok = _is_int(bond.mode) and bond.mode in c.BOND_MODES
    if not mode_ok:
        out.append(_v("bond_mode_invalid", f"{field_prefix}.mode",
                      f"Bond {name} has mode {bond.mode}; the modes are 0-6.", name))
    seen: set[str] = set()
    for token in (bond.options or "").split():
        key, sep, value = token.partition("=")
        if not sep or not key or not value or key in seen:
            problem = "is listed twice" if key in seen and sep and value else "is not key=value"
            out.append(_v("bond_options_invalid", f"{field_prefix}.options",
                          f"The option '{token}' of bond {name} {problem}.", name))
            continue
        seen.add(key)
        if key == "mode" and mode_ok and _bond_mode_from_option(value) != bond.mode:
            out.append(_v("bond_options_mode_mismatch", f"{field_prefix}.options",
                          f"Bond {name} has mode {bond.mode} "
                          f"({c.BOND_MODES[bond.mode]}) but its options say mode={value}.",
                          name))
    return out


# --- Data center and cluster ------------------------------------------------------------

_HANDED_BACK_ROLES = (c.ROLE_DISPLAY, c.ROLE_MIGRATION, c.ROLE_DEFAULT_ROUTE)


def check_cluster_networks(assignments: Sequence[ClusterNetworkData], *,
                           cluster_has_hosts: bool,
                           previous: Sequence[ClusterNetworkData] | None = None
                           ) -> list[Violation]:
    """Roles of a cluster's networks: known, each held at most once, exactly one
    management network which is required and which moves only while there are no hosts
    (`previous` is the stored assignment; None skips that check)."""
    out: list[Violation] = []
    holders: dict[str, list[str]] = {}
    by_name = {a.network: a for a in assignments}
    for a in assignments:
        for role in sorted(a.roles):
            if role not in c.ROLES:
                out.append(_v("role_unknown", "roles",
                              f"Network '{a.network}' has the unknown role '{role}'."))
                continue
            holders.setdefault(role, []).append(a.network)
    for role in c.ROLES:
        nets = holders.get(role, [])
        if len(nets) > 1:
            out.append(_v("role_not_exclusive", "roles",
                          f"The {role} role is held by {_names(nets)}; only one network of a "
                          f"cluster can hold it."))
    managers = holders.get(c.ROLE_MANAGEMENT, [])
    if not managers:
        out.append(_v("management_network_missing", "roles",
                      "The cluster needs a management network; the role can be moved but "
                      "not unset."))
    elif len(managers) == 1:
        manager = managers[0]
        if not by_name[manager].required:
            out.append(_v("management_network_not_required", "required",
                          f"The management network '{manager}' must be required."))
        if previous is not None and cluster_has_hosts:
            before = [p.network for p in previous if c.ROLE_MANAGEMENT in p.roles]
            if before and before[0] != manager:
                out.append(_v("management_role_locked", "roles",
                              f"The management role cannot move from '{before[0]}' to "
                              f"'{manager}' while the cluster has hosts."))
    return out


def assign_role(assignments: Sequence[ClusterNetworkData], network: str,
                role: str) -> list[ClusterNetworkData]:
    """Give `role` to `network`, taking it from its holder. Moving the management role
    also makes the new holder required (the management network must be)."""
    if role not in c.ROLES:
        raise ValueError(f"unknown role {role!r}")
    if not any(a.network == network for a in assignments):
        raise ValueError(f"network {network!r} is not attached to the cluster")
    result = []
    for a in assignments:
        if a.network == network:
            required = True if role == c.ROLE_MANAGEMENT else a.required
            a = replace(a, roles=a.roles | {role}, required=required)
        elif role in a.roles:
            a = replace(a, roles=a.roles - {role})
        result.append(a)
    return result


def detach_from_cluster(assignments: Sequence[ClusterNetworkData], network: str
                        ) -> tuple[list[ClusterNetworkData], list[Violation]]:
    """Remove `network` from the cluster; its display, migration and default-route roles
    go back to the management network. Refused (assignments unchanged) for the management
    network or a network not in the cluster."""
    target = next((a for a in assignments if a.network == network), None)
    if target is None:
        return list(assignments), [_v("network_not_in_cluster", "network",
                                      f"Network '{network}' is not attached to the cluster.")]
    if c.ROLE_MANAGEMENT in target.roles:
        return list(assignments), [_v("management_network_detach", "network",
                                      f"'{network}' is the management network of the cluster "
                                      f"and cannot be detached; move the role first.")]
    handed = frozenset(r for r in target.roles if r in _HANDED_BACK_ROLES)
    result = []
    for a in assignments:
        if a.network == network:
            continue
        if handed and c.ROLE_MANAGEMENT in a.roles:
            a = replace(a, roles=a.roles | handed)
        result.append(a)
    return result, []


# --- Changing a network -----------------------------------------------------------------


def check_network_change(change: NetworkChange) -> list[Violation]:
    """Removing a network's label is allowed (the attachments it made stay, as manual
    ones); adding one is allowed; renaming one is refused while host NICs carry it."""
    out: list[Violation] = []
    old, new = change.old, change.new
    if old.name != new.name and (change.hosts_using or change.vms_using):
        users = [f"host {h}" for h in change.hosts_using] + [f"VM {v}" for v in change.vms_using]
        out.append(_v("network_rename_in_use", "name",
                      f"Network '{old.name}' cannot be renamed to '{new.name}' while it is "
                      f"used by {', '.join(users[:5])}"
                      f"{f' (and {len(users) - 5} more)' if len(users) > 5 else ''}."))
    if old.vm_network and not new.vm_network and change.vnics_using:
        out.append(_v("network_vm_flag_in_use", "vm_network",
                      f"Network '{old.name}' is used by {change.vnics_using} vNIC(s) and "
                      f"cannot stop being a VM network."))
    if old.label and new.label and old.label != new.label and change.nics_with_old_label:
        out.append(_v("network_label_rename_in_use", "label",
                      f"The label '{old.label}' of network '{old.name}' is carried by host "
                      f"NICs {_names(change.nics_with_old_label)}; it cannot be renamed to "
                      f"'{new.label}'."))
    return out


# What each object keeps for life: (kind, field) -> code. A cluster or network moved to
# another data center would leave its hosts, attachments and vNIC profiles pointing across
# data centers; a cluster network moved would carry its roles to another cluster unchecked.
PARENTS_KEPT = {
    ("cluster", "datacenter"): "cluster_datacenter_immutable",
    ("network", "datacenter"): "network_datacenter_immutable",
    ("cluster network", "cluster"): "cluster_network_immutable",
    ("cluster network", "network"): "cluster_network_immutable",
}


def check_parents_kept(kind: str, old: dict[str, object], new: dict[str, object]
                       ) -> list[Violation]:
    """An edit of a ``kind`` ("cluster", "network", "cluster network") changes none of the
    parents it keeps for life; ``old`` and ``new`` map those fields to the stored and the
    edited value (a field missing from ``new`` is not edited)."""
    out: list[Violation] = []
    for (owner, name), code in PARENTS_KEPT.items():
        if owner == kind and name in new and new[name] != old.get(name):
            advice = ("; detach and attach instead" if kind == "cluster network"
                      else "; create it there instead")
            out.append(_v(code, name, f"The {name} of a {kind} cannot change{advice}."))
    return out


def change_needs_push(change: NetworkChange) -> bool:
    """True when hosts carry the network and a property they implement changed (MTU is
    compared by its effective value: 0 and 1500 are the same)."""
    old, new = change.old, change.new
    changed = (old.effective_mtu != new.effective_mtu or old.vlan != new.vlan
               or old.vm_network != new.vm_network)
    return changed and bool(change.hosts_using)


# --- Addresses --------------------------------------------------------------------------

_EMPTY_GATEWAYS = frozenset({"", "0.0.0.0", "::"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError):
        return None


def _prefix_len(netmask: str, version: int) -> int | None:
    """Prefix length of a netmask given as a prefix ('24', '/24') or, for IPv4, dotted."""
    text = netmask.strip().lstrip("/")
    bits = 32 if version == 4 else 128
    if text.isdigit():
        value = int(text)
        return value if 1 <= value <= bits else None
    if version != 4:
        return None
    try:
        net = ipaddress.IPv4Network(f"0.0.0.0/{text}")
    except ValueError:
        return None
    return net.prefixlen or None


def _usable_unicast(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                    version: int) -> bool:
    return (addr is not None and addr.version == version and not addr.is_multicast
            and not addr.is_unspecified and not addr.is_loopback
            and str(addr) != "255.255.255.255")


def _check_ip(cfg: IpConfig, version: int, prefix: str, interface: str, network: str,
              is_default_route: bool) -> list[Violation]:
    out: list[Violation] = []
    fam = f"ipv{version}"
    where = f"{prefix}.{fam}"
    bp = cfg.boot_protocol
    gateway = (cfg.gateway or "").strip()
    if gateway in _EMPTY_GATEWAYS:
        gateway = ""
    if bp not in (c.BOOT_NONE, c.BOOT_DHCP, c.BOOT_STATIC):
        return [_v("boot_protocol_invalid", f"{where}.boot_protocol",
                   f"The {fam} boot protocol '{bp}' of network '{network}' is not one of "
                   f"none, dhcp, static.", interface)]
    if bp != c.BOOT_STATIC:
        if cfg.address or cfg.netmask or gateway:
            out.append(_v("ip_details_without_static", where,
                          f"Network '{network}' uses {fam} boot protocol {bp}; address, "
                          f"netmask and gateway must stay empty.", interface))
        return out
    if not cfg.address:
        out.append(_v("static_ip_incomplete", f"{where}.address",
                      f"Network '{network}' has a static {fam} configuration without an "
                      f"address.", interface))
    if not cfg.netmask:
        out.append(_v("static_ip_incomplete", f"{where}.netmask",
                      f"Network '{network}' has a static {fam} configuration without a "
                      f"netmask or prefix.", interface))
    addr = _parse_ip(cfg.address) if cfg.address else None
    if cfg.address and not _usable_unicast(addr, version):
        out.append(_v("ip_address_invalid", f"{where}.address",
                      f"'{cfg.address}' is not a usable {fam} address (network "
                      f"'{network}').", interface))
        addr = None
    plen = _prefix_len(cfg.netmask, version) if cfg.netmask else None
    if cfg.netmask and plen is None:
        out.append(_v("netmask_invalid", f"{where}.netmask",
                      f"'{cfg.netmask}' is not a valid {fam} "
                      f"{'netmask or prefix length' if version == 4 else 'prefix length'} "
                      f"(network '{network}').", interface))
    if addr is not None and plen is not None and version == 4 and plen <= 30:
        subnet = ipaddress.ip_interface(f"{addr}/{plen}").network
        if addr in (subnet.network_address, subnet.broadcast_address):
            kind = "network" if addr == subnet.network_address else "broadcast"
            out.append(_v("ip_address_invalid", f"{where}.address",
                          f"{addr} is the {kind} address of {subnet}, not a host address "
                          f"(network '{network}').", interface))
    if gateway:
        gw = _parse_ip(gateway)
        if not _usable_unicast(gw, version):
            out.append(_v("gateway_invalid", f"{where}.gateway",
                          f"'{gateway}' is not a usable {fam} gateway (network "
                          f"'{network}').", interface))
        elif addr is not None and plen is not None:
            subnet = ipaddress.ip_interface(f"{addr}/{plen}").network
            if gw not in subnet:
                out.append(_v("gateway_outside_subnet", f"{where}.gateway",
                              f"The gateway {gateway} of network '{network}' is outside its "
                              f"subnet {subnet}.", interface))
        if version == 6 and not is_default_route:
            out.append(_v("ipv6_gateway_not_default_route", f"{where}.gateway",
                          f"Network '{network}' does not hold the default route role; only "
                          f"that network can have an IPv6 gateway.", interface))
    return out


# --- Setting up a host's networks -------------------------------------------------------


def _management_network(host: HostData) -> str | None:
    for name, net in host.networks.items():
        if c.ROLE_MANAGEMENT in net.roles:
            return name
    return c.MANAGEMENT_NETWORK_NAME if c.MANAGEMENT_NETWORK_NAME in host.networks else None


def _label_carriers(nics: Mapping[str, NicData], bonds: Mapping[str, BondData]
                    ) -> dict[str, list[str]]:
    """label -> the interfaces carrying it, sorted by name."""
    carriers: dict[str, list[str]] = {}
    for ifaces in (nics, bonds):
        for name, iface in ifaces.items():
            for label in iface.labels:
                carriers.setdefault(label, []).append(name)
    for names in carriers.values():
        names.sort()
    return carriers


def _synced_names(request: SetupRequest) -> frozenset[str]:
    return frozenset(request.synced) | {a.network for a in request.attachments if a.sync}


def apply_setup_request(host: HostData, request: SetupRequest) -> HostData:
    """The host as it would be after `request`, label propagation included.

    Order: bonds removed, then created/changed; labels replaced; attachments removed, then
    created/changed (as manual ones); then every cluster network whose label an interface
    carries is attached there (moved if needed) with via_label=True, and via_label
    attachments whose label is carried nowhere are dropped. A label carried by several
    interfaces (itself a violation) propagates to the first by name."""
    bonds = dict(host.bonds)
    for name in request.removed_bonds:
        bonds.pop(name, None)
    for bond in request.bonds:
        bonds[bond.name] = bond
    nics = dict(host.nics)
    for iface, labels in request.labels.items():
        if iface in bonds:
            bonds[iface] = replace(bonds[iface], labels=frozenset(labels))
        elif iface in nics:
            nics[iface] = replace(nics[iface], labels=frozenset(labels))

    synced = _synced_names(request)
    attachments = dict(host.attachments)
    for name in request.removed_attachments:
        attachments.pop(name, None)
    for att in request.attachments:
        old = host.attachments.get(att.network)
        out_of_sync = old.out_of_sync if old is not None else False
        attachments[att.network] = replace(att, via_label=False, out_of_sync=out_of_sync)

    carriers = _label_carriers(nics, bonds)
    for name, net in host.networks.items():
        if not net.in_cluster or not net.label or net.label not in carriers:
            continue
        iface = carriers[net.label][0]
        old = attachments.get(name)
        if old is None:
            attachments[name] = AttachmentData(network=name, interface=iface, via_label=True)
        elif old.interface != iface or not old.via_label:
            attachments[name] = replace(old, interface=iface, via_label=True)
    for name in [n for n, a in attachments.items() if a.via_label]:
        net = host.networks.get(name)
        if net is None or not net.in_cluster or not net.label or net.label not in carriers:
            del attachments[name]

    for name in synced:
        att = attachments.get(name)
        if att is not None and att.out_of_sync:
            attachments[name] = replace(att, out_of_sync=False)
    return replace(host, nics=nics, bonds=bonds, attachments=attachments)


def expected_base_mtu(networks_on_interface: Sequence[NetworkData]) -> int:
    """MTU of the base device (NIC or bond): the largest effective MTU of its networks."""
    return max((n.effective_mtu for n in networks_on_interface), default=c.MTU_DEFAULT)


def validate_setup_networks(host: HostData, request: SetupRequest) -> list[Violation]:
    """Every violation of `request` on `host` at once (RULES.md setup rules 1-14, Labels).

    Fields index into the request's lists ("bonds[1].slaves", "attachments[0].ipv4.address",
    "removed_attachments[2]", "labels.eth1"); rules about the resulting state that no single
    request entry caused use "attachments", "bonds" or "labels". Address, role and cluster
    rules apply to attachments the request creates, changes or moves (label propagation
    included); interface rules apply to the whole resulting host. Linear in the host's size.
    """
    out: list[Violation] = []
    add = out.append
    networks = host.networks
    management = _management_network(host)
    synced = _synced_names(request)

    # --- the request itself ---
    bond_index: dict[str, int] = {}
    for i, bond in enumerate(request.bonds):
        where = f"bonds[{i}]"
        out += check_bond(bond, where)
        if bond.name in bond_index:
            add(_v("bond_listed_twice", f"{where}.name",
                   f"Bond {bond.name} is defined twice in the request.", bond.name))
        else:
            bond_index[bond.name] = i
        seen: set[str] = set()
        for slave in bond.slaves:
            if slave in seen:
                add(_v("bond_slave_listed_twice", f"{where}.slaves",
                       f"NIC {slave} is listed twice among the slaves of bond {bond.name}.",
                       bond.name))
            seen.add(slave)

    removed_bond_index: dict[str, int] = {}
    for i, name in enumerate(request.removed_bonds):
        where = f"removed_bonds[{i}]"
        if name in bond_index or name in removed_bond_index:
            add(_v("bond_listed_twice", where,
                   f"Bond {name} is listed twice in the request (removed and "
                   f"{'defined' if name in bond_index else 'removed'}).", name))
        elif name not in host.bonds:
            add(_v("bond_unknown", where,
                   f"Host {host.name} has no bond {name} to remove.", name))
        else:
            removed_bond_index[name] = i

    label_owner: dict[str, str] = {}
    labels_listed_twice: set[str] = set()
    for iface in request.labels:
        where = f"labels.{iface}"
        for label in sorted(request.labels[iface]):
            out += [replace(v, interface=iface) for v in check_label(label, where)]
            owner = label_owner.setdefault(label, iface)
            if owner != iface:
                labels_listed_twice.add(label)
                add(_v("label_listed_twice", where,
                       f"Label '{label}' is given to both {owner} and {iface}; a label "
                       f"belongs to one interface.", iface))

    attachment_index: dict[str, int] = {}
    for i, att in enumerate(request.attachments):
        where = f"attachments[{i}]"
        if att.network in attachment_index:
            add(_v("network_listed_twice", f"{where}.network",
                   f"Network '{att.network}' is listed twice in the request; a network is "
                   f"attached at most once per host.", att.interface))
            continue
        attachment_index[att.network] = i
        if att.network not in networks:
            add(_v("network_unknown", f"{where}.network",
                   f"Network '{att.network}' does not exist in the data center of host "
                   f"{host.name}.", att.interface))
        old = host.attachments.get(att.network)
        if (old is not None and old.out_of_sync and att.network not in synced
                and (old.interface, old.ipv4, old.ipv6) != (att.interface, att.ipv4, att.ipv6)):
            add(_v("out_of_sync_not_synced", where,
                   f"Network '{att.network}' is out of sync on host {host.name}; sync it in "
                   f"the same request to edit it.", att.interface))

    removed_index: dict[str, int] = {}
    for i, name in enumerate(request.removed_attachments):
        where = f"removed_attachments[{i}]"
        old = host.attachments.get(name)
        iface = old.interface if old is not None else None
        if name in attachment_index or name in removed_index:
            add(_v("network_listed_twice", where,
                   f"Network '{name}' is listed twice in the request (detached and "
                   f"{'attached' if name in attachment_index else 'detached'}).", iface))
            continue
        removed_index[name] = i
        if old is None:
            add(_v("attachment_unknown", where,
                   f"Network '{name}' is not attached to host {host.name}; there is "
                   f"nothing to detach."))
        elif name == management:
            add(_v("management_network_removed", where,
                   f"'{name}' is the management network and cannot be removed from host "
                   f"{host.name}.", iface))

    # --- the resulting host ---
    result = apply_setup_request(host, request)
    nics, bonds, attachments = result.nics, result.bonds, result.attachments
    carriers = _label_carriers(nics, bonds)

    for iface in request.labels:
        if iface not in nics and iface not in bonds:
            add(_v("interface_unknown", f"labels.{iface}",
                   f"Host {host.name} has no NIC or bond {iface} to label.", iface))

    slave_of: dict[str, str] = {}
    for name, bond in bonds.items():
        where = f"bonds[{bond_index[name]}].slaves" if name in bond_index else "bonds"
        slaves = list(dict.fromkeys(bond.slaves))
        if len(slaves) < c.BOND_MIN_SLAVES:
            add(_v("bond_too_few_slaves", where,
                   f"Bond {name} has {len(slaves)} slave(s); a bond needs at least "
                   f"{c.BOND_MIN_SLAVES}.", name))
        for slave in slaves:
            if slave in bonds:
                add(_v("bond_slave_invalid", where,
                       f"{slave} is a bond and cannot be a slave of bond {name}.", name))
            elif slave not in nics:
                add(_v("interface_unknown", where,
                       f"Host {host.name} has no NIC {slave} to enslave to bond {name}.",
                       name))
            elif nics[slave].is_vlan_device:
                add(_v("bond_slave_invalid", where,
                       f"{slave} is a VLAN device and cannot be a slave of bond {name}.",
                       name))
            elif slave in slave_of:
                add(_v("nic_in_several_bonds", where,
                       f"NIC {slave} is a slave of both {slave_of[slave]} and {name}.", name))
            else:
                slave_of[slave] = name

    for label, ifaces in carriers.items():
        if len(ifaces) > 1 and label not in labels_listed_twice:
            add(_v("label_on_several_interfaces", f"labels.{ifaces[1]}",
                   f"Label '{label}' is carried by {', '.join(ifaces)} on host {host.name}; "
                   f"a label belongs to one interface.", ifaces[1]))
    for name, nic in nics.items():
        if not nic.labels:
            continue
        if nic.is_vlan_device:
            add(_v("label_on_vlan_device", f"labels.{name}",
                   f"{name} is a VLAN device and cannot carry labels "
                   f"({_names(sorted(nic.labels))}).", name))
        elif name in slave_of:
            add(_v("label_on_bond_slave", f"labels.{name}",
                   f"NIC {name} is a slave of bond {slave_of[name]} and cannot carry labels "
                   f"({_names(sorted(nic.labels))}); label the bond instead.", name))

    def where_of(network: str, detail: str = "") -> str:
        """The request entry of an attachment ("attachments[3]" + detail), or
        "attachments" for one the request did not list (kept or moved by a label)."""
        i = attachment_index.get(network)
        return f"attachments[{i}]{detail}" if i is not None else "attachments"

    # Labels decide where labelled networks go: a hand-made removal or move is refused.
    for name, i in removed_index.items():
        net = networks.get(name)
        if net is not None and net.in_cluster and net.label in carriers:
            iface = carriers[net.label][0]
            add(_v("label_attachment_changed_by_hand", f"removed_attachments[{i}]",
                   f"Network '{name}' is attached through label '{net.label}' on {iface}; "
                   f"remove the label from {iface} to detach it.", iface))
    for name, i in attachment_index.items():
        net = networks.get(name)
        if net is not None and net.in_cluster and net.label in carriers:
            iface = carriers[net.label][0]
            wanted = request.attachments[i].interface
            if wanted != iface:
                add(_v("label_attachment_changed_by_hand", f"attachments[{i}].interface",
                       f"Network '{name}' follows label '{net.label}', carried by {iface}; it "
                       f"cannot be attached to {wanted} by hand.", wanted))

    if management is not None and management not in attachments \
            and management not in removed_index:
        add(_v("management_network_removed", "attachments",
               f"The management network '{management}' must stay attached to host "
               f"{host.name}.", None))
    for name in sorted(host.networks_used_by_running_vms):
        old = host.attachments.get(name)
        if old is not None and name not in attachments:
            i = removed_index.get(name)
            add(_v("network_in_use_by_vms",
                   f"removed_attachments[{i}]" if i is not None else "attachments",
                   f"Network '{name}' is used by running VMs on host {host.name} and cannot "
                   f"be detached.", old.interface))

    default_route = next((n for n, net in networks.items()
                          if c.ROLE_DEFAULT_ROUTE in net.roles), management)
    per_interface: dict[str, list[tuple[AttachmentData, NetworkData]]] = {}
    orphaned: dict[str, list[str]] = {}
    for name, att in attachments.items():
        net = networks.get(name)
        if net is None:  # unknown networks are reported from the request entry
            continue
        iface = att.interface
        where = where_of(name)
        touched = att is not host.attachments.get(name)
        if touched and not net.in_cluster:
            add(_v("network_not_in_cluster", where_of(name, ".network"),
                   f"Network '{name}' is not attached to cluster {host.cluster} of host "
                   f"{host.name}.", iface))
        if iface in bonds:
            pass
        elif iface in nics:
            if nics[iface].is_vlan_device:
                add(_v("attached_to_vlan_device", where_of(name, ".interface"),
                       f"{iface} is a VLAN device; attach '{name}' to its NIC or bond (the "
                       f"VLAN comes from the network).", iface))
                continue
            if iface in slave_of:
                add(_v("bond_slave_carries_networks", where,
                       f"NIC {iface} is a slave of bond {slave_of[iface]} and cannot carry "
                       f"network '{name}'.", iface))
        elif iface in removed_bond_index:
            orphaned.setdefault(iface, []).append(name)
            continue
        else:
            add(_v("interface_unknown", where_of(name, ".interface"),
                   f"Host {host.name} has no NIC or bond {iface} for network '{name}'.",
                   iface))
            continue
        per_interface.setdefault(iface, []).append((att, net))
        if not touched:
            continue
        if net.vlan is not None and len(iface) + 1 + len(str(net.vlan)) > c.IFNAME_MAX:
            add(_v("vlan_device_name_too_long", where,
                   f"The VLAN device {vlan_device_name(iface, net.vlan)} of network "
                   f"'{name}' would exceed {c.IFNAME_MAX} characters.", iface))
        if net.roles and att.ipv4.boot_protocol == c.BOOT_NONE \
                and att.ipv6.boot_protocol == c.BOOT_NONE:
            add(_v("role_network_without_ip", where_of(name, ".ipv4.boot_protocol"),
                   f"Network '{name}' holds the {', '.join(sorted(net.roles))} role(s) "
                   f"and needs a boot protocol other than none.", iface))
        if name in attachment_index:  # moved or kept attachments were checked when made
            is_default_route = name == default_route
            out += _check_ip(att.ipv4, 4, where, iface, name, is_default_route)
            out += _check_ip(att.ipv6, 6, where, iface, name, is_default_route)

    for bond_name, nets in orphaned.items():
        add(_v("bond_in_use", f"removed_bonds[{removed_bond_index[bond_name]}]",
               f"Bond {bond_name} still carries {_names(sorted(nets))}; detach or move them "
               f"to remove it.", bond_name))

    for iface, items in per_interface.items():
        out += _check_interface(host, iface, items, bonds.get(iface), where_of)
    return out


def _check_interface(host: HostData, iface: str,
                     items: list[tuple[AttachmentData, NetworkData]], bond: BondData | None,
                     where_of) -> list[Violation]:
    """Rules 10-13 on one interface's networks."""
    out: list[Violation] = []
    if len(items) == 1:
        net = items[0][1]
        if bond is not None and net.vm_network and bond.mode in c.BOND_MODES_NOT_FOR_VM_NETWORKS:
            out.append(_bond_mode_violation(iface, bond, [net.name], where_of(net.name)))
        return out
    # Networks already there first, so that messages blame the newcomer.
    items = sorted(items, key=lambda item: (
        host.attachments.get(item[1].name, None) is not item[0], item[1].name))
    untagged: list[NetworkData] = []
    vlans: dict[int, str] = {}
    vm_nets: list[str] = []
    with_qos: list[str] = []
    without_qos: list[str] = []
    for _att, net in items:
        if net.vlan is None:
            if untagged:
                out.append(_v("untagged_network_not_exclusive", where_of(net.name),
                              f"Interface {iface} already carries the untagged network "
                              f"{untagged[0].name}; {net.name} would be a second one.", iface))
            untagged.append(net)
        elif net.vlan in vlans:
            out.append(_v("vlan_id_not_unique", where_of(net.name),
                          f"Networks {vlans[net.vlan]} and {net.name} both use VLAN "
                          f"{net.vlan} on interface {iface}.", iface))
        else:
            vlans[net.vlan] = net.name
        if net.vm_network:
            vm_nets.append(net.name)
        (with_qos if net.has_qos else without_qos).append(net.name)
    if untagged:
        mtus: dict[int, list[str]] = {}
        for _att, net in items:
            mtus.setdefault(net.effective_mtu, []).append(net.name)
        if len(mtus) > 1:
            detail = "; ".join(f"{mtu}: {', '.join(names[:5])}"
                               for mtu, names in sorted(mtus.items()))
            out.append(_v("mtu_mismatch", "attachments",
                          f"Interface {iface} carries the untagged network {untagged[0].name}, "
                          f"so all its networks need the same MTU ({detail}).", iface))
    if bond is not None and vm_nets and bond.mode in c.BOND_MODES_NOT_FOR_VM_NETWORKS:
        out.append(_bond_mode_violation(iface, bond, vm_nets, "attachments"))
    if with_qos and without_qos:
        out.append(_v("qos_mixed", "attachments",
                      f"On interface {iface} networks {_names(with_qos)} have host QoS and "
                      f"{_names(without_qos)} do not; all or none must.", iface))
    return out


def _bond_mode_violation(iface: str, bond: BondData, vm_nets: list[str],
                         where: str) -> Violation:
    return _v("vm_network_on_bond_mode", where,
              f"Bond {iface} is in mode {bond.mode} ({c.BOND_MODES.get(bond.mode, '?')}), "
              f"which does not carry VM networks ({_names(vm_nets)}); use mode 1, 2, 3 or 4.",
              iface)


# --- Host status ------------------------------------------------------------------------


def host_compliance(host: HostData, *, bridged: Mapping[str, bool] | None = None
                    ) -> tuple[bool, str]:
    """(operational, reason) of a host against its cluster's networks (RULES.md)."""
    prefix = f"Host {host.name} does not comply with the cluster {host.cluster} networks"
    reasons: list[str] = []
    missing = sorted(name for name, net in host.networks.items()
                     if net.in_cluster and net.required and name not in host.attachments)
    if missing:
        reasons.append(f"{prefix}, the following networks are missing on host: "
                       f"{', '.join(repr(n) for n in missing)}")
    if bridged:
        unbridged = sorted(name for name, att in host.attachments.items()
                           if bridged.get(name) is False and name in host.networks
                           and host.networks[name].vm_network)
        if unbridged:
            reasons.append(f"{prefix}, the following VM networks are non-VM networks: "
                           f"{', '.join(repr(n) for n in unbridged)}")
    down: dict[str, list[str]] = {}
    for name, att in host.attachments.items():
        net = host.networks.get(name)
        if net is None or not net.in_cluster or not net.required:
            continue
        if not _interface_up(host, att.interface):
            down.setdefault(att.interface, []).append(name)
    if down:
        detail = ", ".join(f"'{iface}' ({', '.join(sorted(nets))})"
                           for iface, nets in sorted(down.items()))
        reasons.append(f"Host {host.name} has interfaces which are down but needed by "
                       f"required networks of cluster {host.cluster}: {detail}")
    return (not reasons, "; ".join(reasons))


def _interface_up(host: HostData, iface: str) -> bool:
    nic = host.nics.get(iface)
    if nic is not None:
        return nic.link_up
    bond = host.bonds.get(iface)
    if bond is not None:  # a bond is up while any slave is
        return any(host.nics[s].link_up for s in bond.slaves if s in host.nics)
    return True  # unknown interfaces are not this rule's business


def required_network_operational(required: bool, up_hosts_lacking: Sequence[str]) -> bool:
    """A required network is non-operational while any Up host lacks it."""
    return not required or not up_hosts_lacking


# --- VMs and vNICs ----------------------------------------------------------------------

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$")
_MAC_BARE_RE = re.compile(r"^[0-9a-f]{12}$")
_MAC_DOTTED_RE = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")
_MAC_MAX = (1 << 48) - 1


def normalize_mac(mac: str) -> str | None:
    """'AA-BB-CC-00-11-22', 'aabb.cc00.1122', 'aabbcc001122' -> 'aa:bb:cc:00:11:22'."""
    if not isinstance(mac, str):
        return None
    text = mac.strip().lower()
    if _MAC_RE.match(text):
        digits = text.replace(text[2], "")
    elif _MAC_BARE_RE.match(text) or _MAC_DOTTED_RE.match(text):
        digits = text.replace(".", "")
    else:
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _mac_to_int(mac: str) -> int | None:
    normal = normalize_mac(mac)
    return int(normal.replace(":", ""), 16) if normal else None


def _int_to_mac(value: int) -> str:
    digits = f"{value:012x}"
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _is_multicast(value: int) -> bool:
    return bool((value >> 40) & 1)


def _check_mac(mac: str, where: str, out: list[Violation]) -> int | None:
    """Append a violation for an invalid or multicast MAC; return its value when valid."""
    value = _mac_to_int(mac)
    if value is None or value == 0:
        out.append(_v("mac_address_invalid", where,
                      f"'{mac}' is not a valid MAC address (six hex octets, e.g. "
                      f"56:6f:1a:2b:00:01)."))
        return None
    if _is_multicast(value):
        out.append(_v("mac_address_multicast", where,
                      f"{normalize_mac(mac)} is a multicast MAC address; a NIC needs a unicast "
                      f"one (even first octet)."))
        return None
    return value


def allocate_mac(pool_start: str, pool_end: str, used: Collection[str]) -> str | None:
    """The lowest unicast MAC of the range not in `used`, or None when the range is full.
    Sorts the used addresses inside the range once: O(u log u), independent of the range's
    size."""
    start, end = _mac_to_int(pool_start), _mac_to_int(pool_end)
    if start is None or end is None or start > end:
        return None
    taken: set[int] = set()
    for mac in used:
        if len(mac) == 17 and mac[2] == ":":  # fast path for stored, normalized MACs
            try:
                value = int(mac.replace(":", ""), 16)
            except ValueError:
                continue
        else:
            value = _mac_to_int(mac)
            if value is None:
                continue
        if start <= value <= end:
            taken.add(value)
    candidate = _next_unicast(start)
    for value in sorted(taken):
        if candidate > end or value > candidate:
            break
        if value == candidate:
            candidate = _next_unicast(candidate + 1)
    return _int_to_mac(candidate) if candidate <= end else None


def _next_unicast(value: int) -> int:
    """The lowest non-zero unicast MAC value >= value (skips multicast first octets)."""
    if value == 0:
        value = 1
    if _is_multicast(value):
        value = ((value >> 40) + 1) << 40
    return value


def check_vnic_profile(*, name: str, network_name: str, network_is_vm: bool,
                       other_profile_names_on_network: Iterable[str],
                       network_changed: bool) -> list[Violation]:
    """A profile's name is 1-256 characters (a default profile bears its network's name)
    and unique per network (case-sensitive); its network is a VM network and never
    changes."""
    out: list[Violation] = []
    if not name or not name.strip() or len(name) > c.NETWORK_NAME_MAX:
        out.append(_v("vnic_profile_name_length", "name",
                      f"A vNIC profile name has 1 to {c.NETWORK_NAME_MAX} characters."))
    elif name in set(other_profile_names_on_network):
        out.append(_v("vnic_profile_name_not_unique", "name",
                      f"Network '{network_name}' already has a vNIC profile named '{name}'."))
    if not network_is_vm:
        out.append(_v("vnic_profile_non_vm_network", "network",
                      f"Network '{network_name}' is not a VM network and cannot have vNIC "
                      f"profiles."))
    if network_changed:
        out.append(_v("vnic_profile_network_changed", "network",
                      f"The network of vNIC profile '{name}' cannot change; create a profile "
                      f"on '{network_name}' instead."))
    return out


def check_vnic(*, name: str, mac: str, vnic_type: str, pool_start: str, pool_end: str,
               used_macs: Collection[str], profile_network: str | None,
               profile_network_is_vm: bool,
               networks_on_host: Collection[str] | None) -> list[Violation]:
    """An empty `mac` means "allocate one" and is not checked here. A valid MAC outside the
    pool's range is allowed (operators set MACs by hand, e.g. for a licence), but it must
    still be unique among `used_macs` (which the caller gives without this vNIC's own)."""
    out: list[Violation] = []
    if not name or not name.strip():
        out.append(_v("vnic_name_required", "name", "A vNIC needs a name, e.g. nic1."))
    if mac:
        value = _check_mac(mac, "mac", out)
        if value is not None:
            normal = _int_to_mac(value)
            if normal in used_macs or any(_mac_to_int(u) == value for u in used_macs
                                          if not _is_normal_mac(u)):
                out.append(_v("mac_address_in_use", "mac",
                              f"MAC address {normal} is already used in this MAC pool."))
    if vnic_type not in c.VNIC_TYPES:
        out.append(_v("vnic_type_invalid", "type",
                      f"'{vnic_type}' is not a vNIC type; use one of "
                      f"{', '.join(c.VNIC_TYPES)}."))
    if profile_network is not None:
        if not profile_network_is_vm:
            out.append(_v("vnic_profile_non_vm_network", "profile",
                          f"Network '{profile_network}' is not a VM network; a vNIC cannot "
                          f"connect to it."))
        elif networks_on_host is not None and profile_network not in networks_on_host:
            out.append(_v("vnic_network_not_on_host", "profile",
                          f"Network '{profile_network}' is not implemented on the VM's host."))
    return out


def _is_normal_mac(mac: str) -> bool:
    return len(mac) == 17 and mac == mac.lower() and mac[2] == ":"


# --- Service-level rules: checked with data the services gather -------------------------


def check_attach_to_cluster(*, network: str, network_datacenter: str, cluster: str,
                            cluster_datacenter: str, networks_in_cluster: Collection[str]
                            ) -> list[Violation]:
    """A network joins a cluster of its own data center, once."""
    if network_datacenter != cluster_datacenter:
        return [_v("network_other_datacenter", "network",
                   f"Network {network} is in data center {network_datacenter}, not in "
                   f"{cluster_datacenter} of cluster {cluster}.")]
    if network in networks_in_cluster:
        return [_v("network_already_in_cluster", "network",
                   f"Network {network} is already attached to cluster {cluster}.")]
    return []


def check_role_removal(*, network: str, cluster: str, current_roles: Collection[str],
                       new_roles: Collection[str]) -> list[Violation]:
    """The management role cannot be unset, only given to another network."""
    if c.ROLE_MANAGEMENT in current_roles and c.ROLE_MANAGEMENT not in new_roles:
        return [_v("management_role_unset", "is_management",
                   f"The management role of {network} in cluster {cluster} cannot be unset; "
                   "give it to another network instead.")]
    return []


def check_network_removal(*, network: str, is_management: bool,
                          vms_using: Sequence[str]) -> list[Violation]:
    """A network leaves its data center only when no management role or vNIC needs it."""
    violations = []
    if is_management:
        violations.append(_v("management_network_removal", "network",
                             f"{network} is a management network and cannot be removed."))
    if vms_using:
        violations.append(_v("network_used_by_vms", "network",
                             f"Network {network} is used by the vNICs of VMs: "
                             f"{_names(vms_using)}."))
    return violations


def check_network_leaving_hosts(*, network: str, running_vms: Sequence[str]
                                ) -> list[Violation]:
    """Hosts stop carrying a network only when no running VM there uses it (rule 6)."""
    if running_vms:
        return [_v("network_used_by_running_vms", "network",
                   f"Network {network} is used by running VMs: {_names(running_vms)}.")]
    return []


def allocate_vnic_mac(*, cluster: str, pool_start: str, pool_end: str, used: Collection[str]
                      ) -> tuple[str | None, list[Violation]]:
    """The lowest free MAC of the cluster's pool, or the violation saying there is none."""
    mac = allocate_mac(pool_start, pool_end, used)
    if mac is None:
        return None, [_v("mac_pool_exhausted", "mac",
                         f"The MAC pool of cluster {cluster} ({pool_start} - {pool_end}) has "
                         "no free address.")]
    return mac, []


def check_vm(*, vm: str, cluster: str, host: str | None, host_cluster: str | None,
             vnic_networks: Collection[str] = (),
             networks_on_host: Collection[str] | None = None) -> list[Violation]:
    """A VM runs on a host of its own cluster that implements the networks of its vNICs
    (also when it moves or starts on another host)."""
    if host is None:
        return []
    if host_cluster != cluster:
        return [_v("vm_host_other_cluster", "host",
                   f"Host {host} is in cluster {host_cluster}, not in cluster {cluster} of VM "
                   f"{vm}.")]
    missing = sorted(set(vnic_networks) - set(networks_on_host or ()))
    if networks_on_host is not None and missing:
        return [_v("vnic_network_not_on_host", "host",
                   f"Host {host} does not implement the networks of VM {vm}'s vNICs: "
                   f"{_names(missing)}.")]
    return []


def check_host_key_approval(*, host: str, pending_fingerprint: str, given: str
                            ) -> list[Violation]:
    """An operator approves exactly the key the host presented (by its fingerprint)."""
    if given.strip() != pending_fingerprint:
        return [_v("host_key_fingerprint_mismatch", "fingerprint",
                   f"The pending host key of {host} is {pending_fingerprint}, not "
                   f"{given.strip() or 'an empty fingerprint'}.")]
    return []
