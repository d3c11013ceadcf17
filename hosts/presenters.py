"""What the host pages show, as plain data: the setup page's JSON model, a preview's list
of changes and document diff, and the topology picture's layout.

No rules and no writes here: only reshaping of rows and of the rules' plain data for
templates and the page script.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

from hosts.models import Host
from hosts.state import placement
from networks import constants as c
from networks import rules
from networks.choices import BondMode, BootProtocol
from networks.models import ClusterNetwork

# --- The setup page's model --------------------------------------------------------------


def _ip(protocol, address, netmask, gateway) -> dict:
    return {"boot_protocol": protocol, "address": address, "netmask": netmask,
            "gateway": gateway}


def setup_page_model(host: Host, connectivity_timeout: int) -> dict:
    """Everything the setup page edits, as JSON: the page keeps the whole request
    client-side and sends only the differences (hosts.services.setup_request_from_data)."""
    nics = list(host.nics.select_related("bond").order_by("name"))
    bonds = list(host.bonds.order_by("name"))
    slaves = {b.pk: sorted(n.name for n in nics if n.bond_id == b.pk) for b in bonds}
    assignments = {row.network_id: row for row in
                   ClusterNetwork.objects.filter(cluster_id=host.cluster_id)
                   .select_related("network").order_by("network__name")}
    attachments = list(host.attachments.select_related("network", "nic", "bond")
                       .order_by("network__name"))
    return {
        "host": {"id": host.pk, "name": host.name, "cluster": host.cluster.name},
        "nics": [{"name": n.name, "mac": n.mac, "speed": n.speed, "mtu": n.mtu,
                  "link_up": n.link_up, "labels": sorted(n.labels or [])} for n in nics],
        "bonds": [{"name": b.name, "mode": b.mode, "options": b.options,
                   "slaves": slaves[b.pk], "labels": sorted(b.labels or [])} for b in bonds],
        "attachments": [{
            "network": a.network.name, "interface": a.interface_name,
            "ipv4": _ip(a.ipv4_boot_protocol, a.ipv4_address, a.ipv4_netmask, a.ipv4_gateway),
            "ipv6": _ip(a.ipv6_boot_protocol, a.ipv6_address, a.ipv6_prefix, a.ipv6_gateway),
            "via_label": a.via_label, "in_sync": a.in_sync,
            "out_of_sync": list(a.out_of_sync or []),
        } for a in attachments],
        "networks": [{
            "name": row.network.name, "vlan": row.network.vlan,
            "mtu": row.network.effective_mtu, "vm_network": row.network.vm_network,
            "required": row.required, "roles": sorted(row.roles),
            "label": row.network.label, "management": row.is_management,
        } for row in assignments.values()],
        "bond_modes": [[value, label] for value, label in BondMode.choices],
        "bond_default_options": {str(m): rules.default_bond_options(m) for m in c.BOND_MODES},
        "boot_protocols": [[value, label] for value, label in BootProtocol.choices],
        "options": {"check_connectivity": True, "connectivity_timeout": connectivity_timeout,
                    "commit_on_success": True},
    }


# --- A preview: the changes in words, and the document's diff ---------------------------


def _ip_text(cfg: rules.IpConfig) -> str:
    if cfg.boot_protocol == c.BOOT_STATIC:
        text = f"static {cfg.address}/{cfg.netmask}"
        return text + (f" via {cfg.gateway}" if cfg.gateway else "")
    return cfg.boot_protocol


def describe_changes(before: rules.HostData, after: rules.HostData) -> list[str]:
    """The request's effect, one sentence per change, in the order an operator reads it."""
    lines: list[str] = []
    for name in sorted(set(before.bonds) - set(after.bonds)):
        lines.append(f"Break bond {name} ({', '.join(before.bonds[name].slaves)})")
    for name, bond in sorted(after.bonds.items()):
        old = before.bonds.get(name)
        mode = c.BOND_MODES.get(bond.mode, bond.mode)
        if old is None:
            lines.append(f"Create bond {name}: mode {mode}, slaves {', '.join(bond.slaves)}"
                         + (f", options {bond.options}" if bond.options else ""))
        elif (old.mode, old.options, sorted(old.slaves)) != (bond.mode, bond.options,
                                                             sorted(bond.slaves)):
            lines.append(f"Change bond {name}: mode {mode}, slaves {', '.join(bond.slaves)}"
                         + (f", options {bond.options}" if bond.options else ""))
    for kind, old_map, new_map in (("NIC", before.nics, after.nics),
                                   ("bond", before.bonds, after.bonds)):
        for name, iface in sorted(new_map.items()):
            old = old_map.get(name)
            old_labels = old.labels if old is not None else frozenset()
            if iface.labels != old_labels:
                lines.append(f"Labels of {kind} {name}: "
                             f"{', '.join(sorted(iface.labels)) or 'none'}")
    for name in sorted(set(before.attachments) - set(after.attachments)):
        lines.append(f"Detach {name} from {before.attachments[name].interface}")
    for name, att in sorted(after.attachments.items()):
        old = before.attachments.get(name)
        how = " (through its label)" if att.via_label else ""
        if old is None:
            lines.append(f"Attach {name} to {att.interface}{how}: IPv4 {_ip_text(att.ipv4)}"
                         + (f", IPv6 {_ip_text(att.ipv6)}"
                            if att.ipv6.boot_protocol != c.BOOT_NONE else ""))
            continue
        if old.interface != att.interface:
            lines.append(f"Move {name} from {old.interface} to {att.interface}{how}")
        if (old.ipv4, old.ipv6) != (att.ipv4, att.ipv6):
            lines.append(f"Change the addresses of {name}: IPv4 {_ip_text(att.ipv4)}, "
                         f"IPv6 {_ip_text(att.ipv6)}")
        if old.out_of_sync and not att.out_of_sync:
            lines.append(f"Sync {name}: push the portal's configuration to the host")
    return lines


@dataclass
class InterfaceDiff:
    name: str
    change: str  # "added", "removed" or "changed"
    lines: list[str] = field(default_factory=list)


def document_diff(before: dict, after: dict) -> tuple[list[InterfaceDiff], str]:
    """Per interface of the desired state, what is added, removed or changed; and the
    unified diff of the whole document (what Apply sends to the agent)."""
    old = {i["name"]: i for i in before.get("interfaces", [])}
    new = {i["name"]: i for i in after.get("interfaces", [])}
    items: list[InterfaceDiff] = []
    for name in list(new) + [n for n in old if n not in new]:
        if name not in old:
            items.append(InterfaceDiff(name, "added", _describe(new[name])))
        elif name not in new:
            items.append(InterfaceDiff(name, "removed", [f"{old[name]['type']} goes away"]))
        elif old[name] != new[name]:
            lines = [f"{key}: {json.dumps(old[name].get(key))} → {json.dumps(value)}"
                     for key, value in new[name].items() if old[name].get(key) != value]
            lines += [f"{key}: removed" for key in old[name] if key not in new[name]]
            items.append(InterfaceDiff(name, "changed", lines))
    for key in ("routes", "dns"):
        if before.get(key) != after.get(key):
            items.append(InterfaceDiff(key, "changed", [
                f"{json.dumps(before.get(key))} → {json.dumps(after.get(key))}"]))
    text = "\n".join(difflib.unified_diff(
        json.dumps(before, indent=2, sort_keys=True).splitlines(),
        json.dumps(after, indent=2, sort_keys=True).splitlines(),
        "current desired state", "after this change", lineterm="", n=2))
    return items, text


def _describe(entry: dict) -> list[str]:
    parts = [f"type {entry['type']}", f"mtu {entry.get('mtu')}"]
    if entry.get("ports"):
        parts.append(f"ports {', '.join(entry['ports'])}")
    if entry.get("base"):
        parts.append(f"base {entry['base']} vlan {entry.get('vlan')}")
    for family in ("ipv4", "ipv6"):
        block = entry.get(family) or {}
        if block.get("method") == "static":
            parts.append(f"{family} {', '.join(block.get('addresses', []))}")
        elif block.get("method") == "dhcp":
            parts.append(f"{family} dhcp")
    return ["; ".join(parts)]


# --- The topology picture ---------------------------------------------------------------

ROW_HEIGHT = 44
NODE_HEIGHT = 30
COLUMNS = {"nic": 10, "bond": 170, "vlan": 330, "bridge": 490, "network": 650}
NODE_WIDTH = 140
MARGIN_TOP = 34


@dataclass
class Node:
    id: str
    kind: str
    label: str
    sub: str
    x: int
    y: int
    state: str  # "ok", "warning" (out of sync), "down", "idle" (nothing on it)

    @property
    def cx_right(self) -> int:
        return self.x + NODE_WIDTH

    @property
    def cy(self) -> int:
        return self.y + NODE_HEIGHT // 2


@dataclass
class Edge:
    source: Node
    target: Node
    state: str

    @property
    def path(self) -> str:
        x1, y1 = self.source.cx_right, self.source.cy
        x2, y2 = self.target.x, self.target.cy
        middle = (x1 + x2) // 2
        return f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"


@dataclass
class Topology:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    headers: list[tuple[str, int]]


def topology(host: Host) -> Topology:
    """Layout of the host's devices, left to right: NICs, bonds, VLAN devices, bridges,
    networks; one row per network (or per slave, or per idle NIC). Colours follow the
    attachment's sync state; a NIC whose link is down is marked so."""
    nics = list(host.nics.order_by("name"))
    bonds = list(host.bonds.order_by("name"))
    attachments = list(host.attachments.select_related("network", "nic", "bond")
                       .order_by("network__name"))
    by_base: dict[str, list] = {}
    for att in attachments:
        by_base.setdefault(att.interface_name, []).append(att)
    nodes: list[Node] = []
    edges: list[Edge] = []
    row = 0

    def y(index: float) -> int:
        return int(MARGIN_TOP + index * ROW_HEIGHT)

    def base_state(atts) -> str:
        if not atts:
            return "idle"
        return "ok" if all(a.in_sync for a in atts) else "warning"

    groups: list[tuple[object, list]] = [(b, [n for n in nics if n.bond_id == b.pk])
                                         for b in bonds]
    groups += [(n, []) for n in nics if n.bond_id is None]
    for base, slaves in groups:
        atts = by_base.get(base.name, [])
        rows = max(len(atts), len(slaves), 1)
        middle = row + (rows - 1) / 2
        is_bond = base in bonds
        state = base_state(atts)
        if not is_bond and not base.link_up:
            state = "down"
        base_node = Node(f"if-{base.name}", "bond" if is_bond else "nic", base.name,
                         c.BOND_MODES.get(base.mode, "") if is_bond
                         else ("link down" if not base.link_up else (base.mac or "")),
                         COLUMNS["bond" if is_bond else "nic"], y(middle), state)
        nodes.append(base_node)
        for i, slave in enumerate(slaves):
            offset = row + i + (rows - len(slaves)) / 2
            slave_node = Node(f"if-{slave.name}", "nic", slave.name,
                              "link down" if not slave.link_up else (slave.mac or ""),
                              COLUMNS["nic"], y(offset), "down" if not slave.link_up
                              else state)
            nodes.append(slave_node)
            edges.append(Edge(slave_node, base_node, slave_node.state))
        for i, att in enumerate(atts):
            offset = row + i + (rows - len(atts)) / 2
            where = placement(att)
            att_state = "ok" if att.in_sync else "warning"
            previous = base_node
            if where.vlan_device:
                vlan_node = Node(f"vlan-{where.vlan_device}", "vlan", where.vlan_device,
                                 f"VLAN {att.network.vlan}", COLUMNS["vlan"], y(offset),
                                 att_state)
                nodes.append(vlan_node)
                edges.append(Edge(previous, vlan_node, att_state))
                previous = vlan_node
            if where.bridge:
                bridge_node = Node(f"br-{where.bridge}", "bridge", where.bridge, "bridge",
                                   COLUMNS["bridge"], y(offset), att_state)
                nodes.append(bridge_node)
                edges.append(Edge(previous, bridge_node, att_state))
                previous = bridge_node
            network_node = Node(f"net-{att.network.name}", "network", att.network.name,
                                "in sync" if att.in_sync else "out of sync",
                                COLUMNS["network"], y(offset), att_state)
            nodes.append(network_node)
            edges.append(Edge(previous, network_node, att_state))
        row += rows
    headers = [("NICs", COLUMNS["nic"]), ("Bonds", COLUMNS["bond"]),
               ("VLAN devices", COLUMNS["vlan"]), ("Bridges", COLUMNS["bridge"]),
               ("Networks", COLUMNS["network"])]
    return Topology(nodes, edges, COLUMNS["network"] + NODE_WIDTH + 10,
                    y(max(row, 1)) + 6, headers)
