"""The desired state of a host, compiled from the database, and its sync state.

The document is the only contract between the portal and the agent (DESIGN.md, "Desired
state is data"): interfaces (ethernet, bond, vlan, bridge) with MTU, ports and addresses,
the default route and the DNS servers. It is previewed before an apply, applied by the
agent, and can be exported as nmstate YAML. `attachment_differences` compares what the
portal wants of one attachment with what the host reported (RULES.md "Out of sync").
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from hosts.models import Bond, Host, HostNic, NetworkAttachment
from networks import constants as c
from networks import rules
from networks.choices import BootProtocol
from networks.models import ClusterNetwork

DOCUMENT_VERSION = 1


@dataclass(frozen=True)
class Placement:
    """Where an attachment lives on the host: its base (NIC or bond), the VLAN device if
    any, the bridge if any, and the device that carries its addresses."""

    base: str
    vlan_device: str | None
    bridge: str | None

    @property
    def top(self) -> str:
        return self.bridge or self.vlan_device or self.base


def placement(attachment: NetworkAttachment) -> Placement:
    network = attachment.network
    base = attachment.interface_name
    vlan_device = (rules.vlan_device_name(base, network.vlan) if network.vlan is not None
                   else None)
    bridge = network.on_host_name if network.vm_network else None
    return Placement(base, vlan_device, bridge)


def _prefix(netmask: str, version: int) -> int | None:
    text = (netmask or "").strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen if version == 4 else None
    except ValueError:
        return None


def ip_block(protocol: str, address: str, netmask: str, version: int) -> dict:
    """An attachment's address family as the agent takes it."""
    if protocol == BootProtocol.STATIC:
        return {"method": "static", "addresses": [f"{address}/{_prefix(netmask, version)}"]}
    if protocol == BootProtocol.DHCP:
        return {"method": "dhcp"}
    return {"method": "none"}


def _no_ip() -> dict:
    return {"method": "none"}


def _bond_options(options: str) -> dict:
    """``miimon=100 xmit_hash_policy=2`` as a dict, without ``mode`` (given apart)."""
    parsed = {}
    for item in (options or "").split():
        key, _, value = item.partition("=")
        if key and key != "mode":
            parsed[key] = value
    return parsed


def default_route_network(host: Host) -> str | None:
    """The name of the network holding the default-route role in the host's cluster."""
    return default_route_networks({host.cluster_id}).get(host.cluster_id)


def default_route_networks(cluster_ids) -> dict[int, str]:
    """Per cluster id, the name of its network holding the default-route role (one query)."""
    return dict(ClusterNetwork.objects.filter(cluster_id__in=list(cluster_ids),
                                              is_default_route=True)
                .values_list("cluster_id", "network__name"))


def compile_state(host: Host, *, transaction: str = "preview", check_connectivity: bool = True,
                  rollback_timeout: int = 120) -> dict:
    """The host's desired-state document, from its bonds and attachments."""
    return compile_states([host], {host.pk: transaction}, check_connectivity=check_connectivity,
                          rollback_timeout=rollback_timeout)[host.pk]


def compile_states(hosts, transactions: dict[int, str], *, check_connectivity: bool = True,
                   rollback_timeout: int = 120) -> dict[int, dict]:
    """The desired-state documents of several hosts (by host id, each with its transaction
    id), reading each table once for all of them: a job over fifty hosts compiles them in
    five queries, not three hundred."""
    hosts = list(hosts)
    ids = [h.pk for h in hosts]
    attachments: dict[int, list[NetworkAttachment]] = defaultdict(list)
    for attachment in NetworkAttachment.objects.filter(host_id__in=ids).select_related(
            "network", "nic", "bond").order_by("pk"):
        attachments[attachment.host_id].append(attachment)
    bonds: dict[int, dict] = defaultdict(dict)
    for bond in Bond.objects.filter(host_id__in=ids).prefetch_related("slaves"):
        bonds[bond.host_id][bond.name] = bond
    nics: dict[int, dict] = defaultdict(dict)
    for nic in HostNic.objects.filter(host_id__in=ids):
        nics[nic.host_id][nic.name] = nic
    default_networks = default_route_networks({h.cluster_id for h in hosts})
    return {host.pk: _compile(host, attachments[host.pk], bonds[host.pk], nics[host.pk],
                              default_networks.get(host.cluster_id),
                              transaction=transactions[host.pk],
                              check_connectivity=check_connectivity,
                              rollback_timeout=rollback_timeout)
            for host in hosts}


def _compile(host: Host, attachments: list[NetworkAttachment], bonds: dict, nics: dict,
             default_network: str | None, *, transaction: str, check_connectivity: bool,
             rollback_timeout: int) -> dict:
    by_base: dict[str, list[NetworkAttachment]] = defaultdict(list)
    for attachment in attachments:
        by_base[attachment.interface_name].append(attachment)

    interfaces: dict[str, dict] = {}
    # Bonds first, then every base, then VLAN devices and bridges (the agent orders the
    # commands itself; a stable order keeps previews readable).
    for name, bond in sorted(bonds.items()):
        mtu = rules.expected_base_mtu([a.network.as_rule_data() for a in by_base.get(name, [])])
        interfaces[name] = {
            "name": name, "type": "bond", "state": "up", "mtu": mtu,
            "mode": c.BOND_MODES[bond.mode], "options": _bond_options(bond.options),
            "ports": sorted(s.name for s in bond.slaves.all()),
            "ipv4": _no_ip(), "ipv6": _no_ip(),
        }
    for name in sorted(by_base):
        if name in bonds:
            continue
        mtu = rules.expected_base_mtu([a.network.as_rule_data() for a in by_base[name]])
        interfaces[name] = {"name": name, "type": "ethernet", "state": "up", "mtu": mtu,
                            "ipv4": _no_ip(), "ipv6": _no_ip()}
    routes: dict = {}
    dns = None
    for attachment in attachments:
        network = attachment.network
        where = placement(attachment)
        mtu = network.effective_mtu
        ipv4 = ip_block(attachment.ipv4_boot_protocol, attachment.ipv4_address,
                        attachment.ipv4_netmask, 4)
        ipv6 = ip_block(attachment.ipv6_boot_protocol, attachment.ipv6_address,
                        attachment.ipv6_prefix, 6)
        if where.vlan_device:
            interfaces[where.vlan_device] = {
                "name": where.vlan_device, "type": "vlan", "state": "up", "base": where.base,
                "vlan": network.vlan, "mtu": mtu, "ipv4": _no_ip(), "ipv6": _no_ip()}
        if where.bridge:
            interfaces[where.bridge] = {
                "name": where.bridge, "type": "bridge", "state": "up", "mtu": mtu,
                "stp": network.stp, "ports": [where.vlan_device or where.base],
                "ipv4": _no_ip(), "ipv6": _no_ip()}
        interfaces[where.top]["ipv4"] = ipv4
        interfaces[where.top]["ipv6"] = ipv6
        if network.name == default_network:
            gateway = (attachment.ipv4_gateway or "").strip()
            if gateway and gateway != "0.0.0.0":
                routes["default"] = {"gateway": gateway, "interface": where.top}
            gateway6 = (attachment.ipv6_gateway or "").strip()
            if gateway6 and gateway6 != "::":
                routes["default6"] = {"gateway": gateway6, "interface": where.top}
            if network.dns_servers:
                dns = list(network.dns_servers)
    # NICs the portal configured before and no longer uses get their addresses removed and
    # the default MTU back; NICs it never configured are left alone.
    previous = {i["name"]: i for i in (host.applied_state or {}).get("interfaces", [])}
    for name, entry in previous.items():
        if name in interfaces or name not in nics or entry.get("type") != "ethernet":
            continue
        if any(s.name == name for b in bonds.values() for s in b.slaves.all()):
            continue
        interfaces[name] = {"name": name, "type": "ethernet", "state": "up",
                            "mtu": c.MTU_DEFAULT, "ipv4": _no_ip(), "ipv6": _no_ip()}
    document = {
        "version": DOCUMENT_VERSION, "transaction": transaction,
        "interfaces": list(interfaces.values()),
        "check_connectivity": check_connectivity, "rollback_timeout": rollback_timeout,
    }
    # A default route is managed once the portal set one; otherwise it is left alone (a
    # DHCP-provided gateway, say, is not the portal's to remove).
    if routes or (host.applied_state or {}).get("routes"):
        document["routes"] = routes
    if dns is not None:
        document["dns"] = dns
    return document


# --- Sync state -------------------------------------------------------------------------


def _reported_links(report: dict) -> dict[str, dict]:
    return {i["name"]: i for i in report.get("interfaces", [])}


def attachment_differences(attachment: NetworkAttachment, report: dict,
                           default_network: str | None) -> list[dict]:
    """The properties of one attachment that differ between the portal and the host
    (RULES.md "Out of sync"), each as {property, wanted, reported}; empty when in sync.

    Not compared: STP, bridge options, bond options, labels.
    """
    links = _reported_links(report)
    network = attachment.network
    where = placement(attachment)
    differences: list[dict] = []

    def differ(prop, wanted, reported):
        differences.append({"property": prop, "wanted": wanted, "reported": reported})

    top = links.get(where.top)
    if top is None:
        differ("implemented", where.top, None)
        return differences
    if top.get("mtu") != network.effective_mtu:
        differ("mtu", network.effective_mtu, top.get("mtu"))
    bridged = top.get("type") == "bridge"
    if bridged != network.vm_network:
        differ("bridged", network.vm_network, bridged)
    if where.vlan_device:
        vlan_link = links.get(where.vlan_device) or {}
        if vlan_link.get("vlan") != network.vlan:
            differ("vlan", network.vlan, vlan_link.get("vlan"))
    if where.bridge:
        port = where.vlan_device or where.base
        if port not in (top.get("ports") or []):
            differ("bridge_port", port, top.get("ports") or [])
    _compare_ip(differ, 4, attachment.ipv4_boot_protocol, attachment.ipv4_address,
                attachment.ipv4_netmask, top.get("ipv4") or [], bool(top.get("dhcp")))
    _compare_ip(differ, 6, attachment.ipv6_boot_protocol, attachment.ipv6_address,
                attachment.ipv6_prefix, top.get("ipv6") or [], bool(top.get("dhcp6")))
    if network.name == default_network:
        route = (report.get("routes") or {}).get("default") or {}
        wanted_gateway = (attachment.ipv4_gateway or "").strip()
        wanted_gateway = "" if wanted_gateway == "0.0.0.0" else wanted_gateway
        reported_gateway = route.get("gateway") or ""
        if wanted_gateway and (reported_gateway != wanted_gateway
                               or route.get("interface") != where.top):
            differ("ipv4_gateway", wanted_gateway, reported_gateway or None)
        if network.dns_servers and list(network.dns_servers) != list(report.get("dns") or []):
            differ("dns_servers", list(network.dns_servers), report.get("dns") or [])
    return differences


def _compare_ip(differ, version, protocol, address, netmask, reported, dynamic) -> None:
    prop = f"ipv{version}"
    if protocol == BootProtocol.STATIC:
        wanted = f"{address}/{_prefix(netmask, version)}"
        if wanted not in reported:
            differ(f"{prop}_address", wanted, reported)
        if dynamic:
            differ(f"{prop}_boot_protocol", BootProtocol.STATIC, BootProtocol.DHCP)
    elif protocol == BootProtocol.DHCP:
        if reported and not dynamic:
            differ(f"{prop}_boot_protocol", BootProtocol.DHCP, BootProtocol.STATIC)
    elif reported and version == 4:
        differ(f"{prop}_boot_protocol", BootProtocol.NONE,
               BootProtocol.DHCP if dynamic else BootProtocol.STATIC)


def nmstate_yaml(document: dict) -> str:
    """The desired state as an nmstate YAML document (for operators who use nmstate)."""
    import yaml

    interfaces = []
    for entry in document["interfaces"]:
        item = {"name": entry["name"], "type": {"ethernet": "ethernet", "bond": "bond",
                                                 "vlan": "vlan", "bridge": "linux-bridge"}
                [entry["type"]], "state": entry.get("state", "up")}
        if entry.get("mtu"):
            item["mtu"] = entry["mtu"]
        if entry["type"] == "bond":
            item["link-aggregation"] = {"mode": entry["mode"], "port": entry["ports"],
                                        "options": entry.get("options", {})}
        elif entry["type"] == "vlan":
            item["vlan"] = {"base-iface": entry["base"], "id": entry["vlan"]}
        elif entry["type"] == "bridge":
            item["bridge"] = {"options": {"stp": {"enabled": bool(entry.get("stp"))}},
                              "port": [{"name": p} for p in entry["ports"]]}
        for family in ("ipv4", "ipv6"):
            block = entry.get(family) or {"method": "none"}
            if block["method"] == "static":
                item[family] = {"enabled": True, "dhcp": False, "address": [
                    {"ip": a.split("/")[0], "prefix-length": int(a.split("/")[1])}
                    for a in block["addresses"]]}
            elif block["method"] == "dhcp":
                item[family] = {"enabled": True, "dhcp": True}
            else:
                item[family] = {"enabled": False}
        interfaces.append(item)
    state: dict = {"interfaces": interfaces}
    routes = document.get("routes") or {}
    config = []
    for key, destination in (("default", "0.0.0.0/0"), ("default6", "::/0")):
        if routes.get(key):
            config.append({"destination": destination,
                           "next-hop-address": routes[key]["gateway"],
                           "next-hop-interface": routes[key]["interface"]})
    if config:
        state["routes"] = {"config": config}
    if document.get("dns"):
        state["dns-resolver"] = {"config": {"server": document["dns"]}}
    return yaml.safe_dump(state, sort_keys=False)
