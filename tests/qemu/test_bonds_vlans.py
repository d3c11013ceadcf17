"""Bonds, VLAN devices and bridges on them, applied by the agent on a real Debian kernel.

Why: these are the paths the fast tier cannot run (its kernel has no bonding, 8021q or
dummy driver).  Every test goes the portal's real way -- `hosts.ssh.connect` with the guest's
pinned host key, the agent uploaded over SFTP and run with ``python3`` -- and checks the
result with the kernel's own ``ip -json -d link show``, never only with the agent's word.
The NICs are dummy devices eth1..eth4 made at boot (the agent did not create them, so it
must never delete them); documents name them only as ports, as the portal's compiler does
for bond slaves.
"""

from __future__ import annotations

import json
import time

import pytest

from hosts import ssh
from tests.qemu import build

pytestmark = pytest.mark.qemu

BOND_PORTS = ["eth1", "eth2"]


def document(txid: str, interfaces: list[dict], **extra) -> dict:
    return {"version": 1, "transaction": txid, "interfaces": interfaces, **extra}


def bond(name="bond0", mode="active-backup", ports=BOND_PORTS, options=None, **extra):
    return {"name": name, "type": "bond", "state": "up", "mode": mode, "ports": list(ports),
            "options": options or {}, "ipv4": {"method": "none"}, "ipv6": {"method": "none"},
            **extra}


def vlan(base: str, vid: int, **extra):
    return {"name": f"{base}.{vid}", "type": "vlan", "state": "up", "base": base, "vlan": vid,
            "ipv4": {"method": "none"}, "ipv6": {"method": "none"}, **extra}


def bridge(name: str, port: str, **extra):
    return {"name": name, "type": "bridge", "state": "up", "ports": [port], "stp": False,
            "ipv4": {"method": "none"}, "ipv6": {"method": "none"}, **extra}


def run_checked(conn, argv: list[str]) -> str:
    status, out, err = conn.run(argv, timeout=60)
    assert status == 0, f"{argv} failed ({status}): {err.decode(errors='replace')}"
    return out.decode()


def kernel_links(conn) -> dict[str, dict]:
    """`ip -json -d link show` in the guest, by name: the kernel's own word."""
    entries = json.loads(run_checked(conn, ["ip", "-json", "-d", "link", "show"]))
    return {e["ifname"]: e for e in entries}


def info(entry: dict) -> dict:
    return (entry.get("linkinfo") or {}).get("info_data") or {}


def kind(entry: dict) -> str | None:
    return (entry.get("linkinfo") or {}).get("info_kind")


def kernel_addresses(conn, name: str) -> list[str]:
    entries = json.loads(run_checked(conn, ["ip", "-json", "addr", "show", "dev", name]))
    return sorted(f"{a['local']}/{a['prefixlen']}" for e in entries
                  for a in e.get("addr_info", []) if a.get("scope") == "global")


def reported(conn) -> dict[str, dict]:
    return {i["name"]: i for i in conn.agent("report")["interfaces"]}


def stable_view(links: dict[str, dict]) -> dict:
    """What an apply could change, per link (counters, carrier and a bridge's running timers
    drift on their own)."""
    return {name: (e["ifindex"], kind(e), e["mtu"], e.get("master"), "UP" in e["flags"],
                   e.get("link"), json.dumps({k: v for k, v in info(e).items()
                                              if "timer" not in k}, sort_keys=True))
            for name, e in links.items()}


# --------------------------------------------------------------------------------------------


def test_guest_runs_debian_kernel_with_the_drivers(conn, qemu_guest):
    """The drivers under test are loaded, and the module options kept them from making
    devices of their own (bond0/dummy0 would otherwise appear by themselves)."""
    assert run_checked(conn, ["uname", "-r"]).strip() == qemu_guest.kernel_version
    modules = run_checked(conn, ["cat", "/proc/modules"])
    for module in ("bonding", "8021q", "dummy", "bridge", "garp", "mrp", "stp", "llc"):
        assert f"\n{module} " in f"\n{modules}", f"{module} not loaded"
    links = kernel_links(conn)
    assert set(links) == {"lo", "eth0", "eth1", "eth2", "eth3", "eth4"}
    assert all(kind(links[n]) == "dummy" for n in ("eth1", "eth2", "eth3", "eth4"))
    # Safety: the guest's only way out is QEMU's restricted user network, and it has no
    # route beyond the management subnet.
    assert kernel_addresses(conn, "eth0") == [build.GUEST_ADDRESS]
    assert json.loads(run_checked(conn, ["ip", "-json", "route", "show", "default"])) == []


def test_changed_host_key_is_refused(qemu_guest):
    """The guest's key is pinned, not trusted on first use: another pinned key refuses."""
    host = qemu_guest.host()
    host.host_key = qemu_guest.pkey.get_base64()  # a valid Ed25519 key, not the guest's
    with pytest.raises(ssh.SshError) as error:
        ssh.connect(host, qemu_guest.pkey)
    assert error.value.code == "host_key_changed"


def test_long_output_is_read_to_the_end(conn):
    """Every check here reads the kernel through `Connection.run`: a long output must come
    back whole even when the server sends the exit status before the last data."""
    for _ in range(5):
        status, out, _err = conn.run(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"])
        assert (status, len(out), out.count(b"x")) == (0, 300000, 300000)


def test_active_backup_bond_with_options(conn):
    """Mode 1 with miimon/updelay/downdelay/fail_over_mac: the kernel shows exactly those,
    the ports are enslaved, and `report` says the same."""
    options = {"miimon": 100, "updelay": 200, "downdelay": 300, "fail_over_mac": "active"}
    answer = conn.agent("apply", document("ab-1", [bond(options=options)]))
    assert answer["status"] == "committed"
    assert any(c.startswith("link add bond0 type bond mode active-backup")
               for c in answer["commands"])

    links = kernel_links(conn)
    data = info(links["bond0"])
    assert kind(links["bond0"]) == "bond"
    assert (data["mode"], data["miimon"], data["updelay"], data["downdelay"],
            data["fail_over_mac"]) == ("active-backup", 100, 200, 300, "active")
    for port in BOND_PORTS:
        assert links[port]["master"] == "bond0"
        assert links[port]["linkinfo"]["info_slave_kind"] == "bond"
    assert links["eth3"].get("master") is None
    states = sorted(links[p]["linkinfo"]["info_slave_data"]["state"] for p in BOND_PORTS)
    assert states == ["ACTIVE", "BACKUP"]

    report = reported(conn)["bond0"]
    assert report["type"] == "bond"
    assert report["mode"] == "active-backup"
    assert report["slaves"] == BOND_PORTS and report["ports"] == BOND_PORTS
    assert {k: report["options"][k] for k in ("miimon", "updelay", "downdelay",
                                              "fail_over_mac")} == {
        "miimon": "100", "updelay": "200", "downdelay": "300", "fail_over_mac": "active"}
    assert conn.agent("status")["managed"] == ["bond0"]


def test_lacp_bond_with_options_given_as_numbers(conn):
    """Mode 4 given as the number 4, options as the portal's numbers and names: the agent
    translates them to the names the kernel reports, so the re-read verifies."""
    options = {"miimon": "100", "lacp_rate": 1, "xmit_hash_policy": "layer3+4",
               "ad_select": "bandwidth", "min_links": 1}
    answer = conn.agent("apply", document("lacp-1", [bond(mode=4, options=options,
                                                          ports=["eth1", "eth2", "eth3"])]))
    assert answer["status"] == "committed"

    data = info(kernel_links(conn)["bond0"])
    assert (data["mode"], data["miimon"], data["ad_lacp_rate"], data["xmit_hash_policy"],
            data["ad_select"], data["min_links"]) == ("802.3ad", 100, "fast", "layer3+4",
                                                      "bandwidth", 1)
    report = reported(conn)["bond0"]
    assert report["mode"] == "802.3ad"
    assert report["slaves"] == ["eth1", "eth2", "eth3"]
    assert {k: report["options"][k] for k in ("lacp_rate", "xmit_hash_policy", "ad_select",
                                              "min_links")} == {
        "lacp_rate": "fast", "xmit_hash_policy": "layer3+4", "ad_select": "bandwidth",
        "min_links": "1"}


def full_stack(txid: str, mtu_vm: int = 9000, mtu_plain: int = 1500) -> dict:
    """A bond carrying a VM network (VLAN 100 + bridge) and a non-VM network (VLAN 200 with
    an address); the bond takes the largest MTU of its networks, as the compiler gives it."""
    return document(txid, [
        bond(mode="802.3ad", options={"miimon": 100, "lacp_rate": "fast"},
             mtu=max(mtu_vm, mtu_plain)),
        vlan("bond0", 100, mtu=mtu_vm),
        bridge("vmnet", "bond0.100", mtu=mtu_vm),
        vlan("bond0", 200, mtu=mtu_plain,
             ipv4={"method": "static", "addresses": ["198.18.20.5/24"]},
             ipv6={"method": "static", "addresses": ["2001:db8:20::5/64"]}),
    ])


def test_vlans_on_a_bond_with_a_vm_bridge_and_a_non_vm_network(conn):
    """VLAN devices on a bond, a bridge on one of them, addresses on the other, MTUs as
    asked; the kernel and `report` agree on every link's base, id, master and MTU."""
    answer = conn.agent("apply", full_stack("stack-1"))
    assert answer["status"] == "committed"

    links = kernel_links(conn)
    assert info(links["bond0"])["mode"] == "802.3ad"
    assert links["bond0"]["mtu"] == 9000
    assert [links[p]["mtu"] for p in BOND_PORTS] == [9000, 9000]
    for name, vid, mtu in (("bond0.100", 100, 9000), ("bond0.200", 200, 1500)):
        entry = links[name]
        assert kind(entry) == "vlan"
        assert info(entry)["id"] == vid and info(entry)["protocol"] == "802.1Q"
        assert entry["link"] == "bond0"
        assert entry["mtu"] == mtu
    assert kind(links["vmnet"]) == "bridge" and links["vmnet"]["mtu"] == 9000
    assert links["bond0.100"]["master"] == "vmnet"
    assert links["bond0.200"].get("master") is None
    assert kernel_addresses(conn, "bond0.200") == ["198.18.20.5/24", "2001:db8:20::5/64"]
    assert kernel_addresses(conn, "vmnet") == []

    report = reported(conn)
    assert (report["bond0.100"]["type"], report["bond0.100"]["vlan"],
            report["bond0.100"]["base"], report["bond0.100"]["master"]) == (
        "vlan", 100, "bond0", "vmnet")
    assert (report["bond0.200"]["vlan"], report["bond0.200"]["base"],
            report["bond0.200"]["ipv4"], report["bond0.200"]["ipv6"]) == (
        200, "bond0", ["198.18.20.5/24"], ["2001:db8:20::5/64"])
    assert report["vmnet"]["ports"] == ["bond0.100"]
    assert report["bond0"]["slaves"] == BOND_PORTS
    assert report["eth1"]["master"] == "bond0" and report["eth1"]["vlan"] is None
    assert sorted(conn.agent("status")["managed"]) == ["bond0", "bond0.100", "bond0.200",
                                                       "vmnet"]
    # The portal's read without Python on the host (scans, resyncs) parses to exactly the
    # agent's report on this real kernel: bond modes and options, VLANs, IPv6. Compared
    # once the kernel holds still around the portal's read (the agent's reports before and
    # after it agree): a new bridge's operstate goes from "unknown" to "up" by itself.
    for _ in range(25):
        agent_report, portal_report = conn.agent("report"), conn.report()
        if conn.agent("report") == agent_report:
            break
        time.sleep(0.2)
    assert portal_report == agent_report


def test_unchanged_reapply_changes_nothing(conn):
    """Applying the state that holds runs no command and leaves every link as it was (same
    ifindex: nothing was re-created)."""
    assert conn.agent("apply", full_stack("same-1"))["status"] == "committed"
    before = stable_view(kernel_links(conn))

    read = conn.read_state()
    assert ssh.agent_module().unchanged_by(full_stack("same-2"), read)  # judged as the agent does
    again = conn.agent("apply", full_stack("same-2"))
    assert (again["status"], again["changes"], again["commands"]) == ("unchanged", 0, [])
    dry = conn.agent("apply", {**full_stack("same-3"), "dry_run": True})
    assert (dry["status"], dry["changes"]) == ("unchanged", 0)
    assert stable_view(kernel_links(conn)) == before


def test_mtu_order_raise_and_lower(conn):
    """Raising: the bond goes up before its VLAN; lowering: the VLAN goes down first.  The
    kernel refuses a VLAN MTU above its base's, so a wrong order would fail the batch."""
    assert conn.agent("apply", full_stack("mtu-1", mtu_vm=1500))["status"] == "committed"
    assert kernel_links(conn)["bond0.100"]["mtu"] == 1500

    # The rule the order exists for, straight from the kernel.
    status, _out, err = conn.run(["ip", "link", "set", "bond0.100", "mtu", "9000"])
    assert status != 0 and b"Numerical result out of range" in err  # ERANGE
    assert kernel_links(conn)["bond0.100"]["mtu"] == 1500

    raised = conn.agent("apply", full_stack("mtu-2", mtu_vm=9000))
    mtu_lines = [c for c in raised["commands"] if " mtu " in c]
    assert mtu_lines.index("link set bond0 mtu 9000") < mtu_lines.index(
        "link set bond0.100 mtu 9000")
    links = kernel_links(conn)
    assert (links["bond0"]["mtu"], links["bond0.100"]["mtu"], links["vmnet"]["mtu"],
            links["bond0.200"]["mtu"]) == (9000, 9000, 9000, 1500)

    lowered = conn.agent("apply", full_stack("mtu-3", mtu_vm=1500))
    mtu_lines = [c for c in lowered["commands"] if " mtu " in c]
    assert mtu_lines.index("link set bond0.100 mtu 1500") < mtu_lines.index(
        "link set bond0 mtu 1500")
    links = kernel_links(conn)
    assert (links["bond0"]["mtu"], links["bond0.100"]["mtu"], links["vmnet"]["mtu"]) == (
        1500, 1500, 1500)


def test_vlan_mtu_above_its_base_is_refused_before_any_change(conn):
    """A document asking a VLAN MTU above its base's is invalid: nothing is created."""
    doc = document("bad-mtu", [bond(mtu=1500), vlan("bond0", 300, mtu=9000)])
    with pytest.raises(ssh.AgentError) as error:
        conn.agent("apply", doc)
    assert error.value.code == "invalid_state"
    assert any("above its base" in p for p in error.value.answer["error"]["problems"])
    assert "bond0" not in kernel_links(conn)


def test_removal_is_top_down_and_leaves_the_nics(conn):
    """Dropping the whole stack deletes bridge, then VLAN devices, then the bond; the NICs
    (not the agent's) stay, released and up."""
    assert conn.agent("apply", full_stack("rm-1"))["status"] == "committed"

    answer = conn.agent("apply", document("rm-2", []))
    assert answer["status"] == "committed"
    dels = [c for c in answer["commands"] if c.startswith("link del ")]
    assert dels.index("link del vmnet") < dels.index("link del bond0.100") < dels.index(
        "link del bond0")
    assert dels.index("link del bond0.200") < dels.index("link del bond0")

    links = kernel_links(conn)
    assert set(links) == {"lo", "eth0", "eth1", "eth2", "eth3", "eth4"}
    for nic in ("eth1", "eth2"):
        assert links[nic].get("master") is None and "UP" in links[nic]["flags"]
    assert conn.agent("status")["managed"] == []


def test_absent_vlan_removed_alone(conn):
    """state absent on one VLAN deletes it (bridge on it first) and keeps the rest."""
    assert conn.agent("apply", full_stack("abs-1"))["status"] == "committed"
    doc = full_stack("abs-2")
    doc["interfaces"] = [i for i in doc["interfaces"] if i["name"] not in ("vmnet",)]
    for item in doc["interfaces"]:
        if item["name"] == "bond0.100":
            item["state"] = "absent"
    answer = conn.agent("apply", doc)
    assert answer["commands"][:2] == ["link del vmnet", "link del bond0.100"]
    links = kernel_links(conn)
    assert "bond0.100" not in links and "vmnet" not in links
    assert links["bond0.200"]["link"] == "bond0" and links["bond0"]["mtu"] == 9000


def test_agent_creates_and_deletes_its_own_dummy(conn):
    """A dummy the document asks for is created (and then managed); dropped, it goes."""
    answer = conn.agent("apply", document("dummy-1", [
        {"name": "dummy7", "type": "dummy", "state": "up", "mtu": 2000,
         "ipv4": {"method": "static", "addresses": ["198.18.30.1/24"]}}]))
    assert answer["status"] == "committed"
    links = kernel_links(conn)
    assert kind(links["dummy7"]) == "dummy" and links["dummy7"]["mtu"] == 2000
    assert kernel_addresses(conn, "dummy7") == ["198.18.30.1/24"]
    conn.agent("apply", document("dummy-2", []))
    assert "dummy7" not in kernel_links(conn)


def wait_rolled_back(guest, deadline_seconds: float = 90) -> dict:
    """Poll `status` over fresh connections (as the portal would) until nothing is pending."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        with guest.connect() as conn:
            status = conn.agent("status")
        if status["pending"] is None:
            return status
        assert time.monotonic() < deadline, f"timer never fired: {status}"
        time.sleep(0.5)


ROLLBACK_OPTIONS = {"miimon": 100, "updelay": 200, "fail_over_mac": "active"}


def test_unconfirmed_bond_change_is_rolled_back_by_the_timer(guest):
    """A bond change applied with the connectivity check and never confirmed: the detached
    timer puts the previous bond back (mode, every option, slaves, the VLAN on it), and a
    late confirm is told the transaction was rolled back.

    fail_over_mac is in the previous bond on purpose: the kernel takes it only on a bond
    without slaves, so a rollback that forgot it could never get back to the committed state.
    """
    with guest.connect() as conn:
        first = conn.agent("apply", document("rb-1", [
            bond(options=ROLLBACK_OPTIONS), vlan("bond0", 100)]))
        assert first["status"] == "committed"
        before = kernel_links(conn)

        changed = conn.agent("apply", document("rb-2", [
            bond(mode="802.3ad", options={"miimon": 200, "lacp_rate": "fast"},
                 ports=["eth1", "eth2", "eth3"]), vlan("bond0", 100)],
            check_connectivity=True, rollback_timeout=3))
        assert changed["status"] == "pending"
        during = kernel_links(conn)
        assert info(during["bond0"])["mode"] == "802.3ad"
        assert during["eth3"]["master"] == "bond0"
        assert during["bond0.100"]["link"] == "bond0"

    # No confirm: the timer must act by itself.
    assert wait_rolled_back(guest)["committed"] == "rb-1"

    with guest.connect() as conn:
        after = kernel_links(conn)
        data = info(after["bond0"])
        assert (data["mode"], data["miimon"], data["updelay"], data["fail_over_mac"]) == (
            "active-backup", 100, 200, "active")
        assert sorted(n for n, e in after.items() if e.get("master") == "bond0") == BOND_PORTS
        assert after["eth3"].get("master") is None and "UP" in after["eth3"]["flags"]
        assert (kind(after["bond0.100"]), info(after["bond0.100"])["id"],
                after["bond0.100"]["link"]) == ("vlan", 100, "bond0")
        assert set(after) == set(before)
        with pytest.raises(ssh.AgentError) as error:
            conn.agent("confirm", {"transaction": "rb-2"})
        assert error.value.code == "already_rolled_back"
        # The restored state is what the committed document says: re-applying it is a no-op.
        again = conn.agent("apply", document("rb-3", [bond(options=ROLLBACK_OPTIONS),
                                                      vlan("bond0", 100)]))
        assert again["status"] == "unchanged"


def test_timer_restores_a_bond_with_default_options(guest):
    """The plainest bond (mode 1, no options: the kernel's miimon is 0 then) comes back too.

    Found here: the snapshot gave ``updelay 0 downdelay 0`` back to ``ip link add``, which
    the kernel refuses (EPERM) while miimon is 0, so the "rollback" left no bond, no VLAN and
    the NICs down.
    """
    with guest.connect() as conn:
        conn.agent("apply", document("plain-1", [bond(), vlan("bond0", 10)]))
        assert info(kernel_links(conn)["bond0"])["miimon"] == 0
        pending = conn.agent("apply", document("plain-2", [
            bond(mode="balance-xor", options={"xmit_hash_policy": "layer2+3"}),
            vlan("bond0", 10)], check_connectivity=True, rollback_timeout=2))
        assert pending["status"] == "pending"
    assert wait_rolled_back(guest)["committed"] == "plain-1"
    with guest.connect() as conn:
        links = kernel_links(conn)
        assert info(links["bond0"])["mode"] == "active-backup"
        assert sorted(n for n, e in links.items() if e.get("master") == "bond0") == BOND_PORTS
        assert all("UP" in links[n]["flags"] for n in ("bond0", "bond0.10", *BOND_PORTS))
        log = run_checked(conn, ["cat", "/var/lib/netportal/agent.log"])
        assert "rollback: " in log and "problems=[] error=None" in log


ALL_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
             "balance-tlb", "balance-alb")


def bond_settings(conn) -> dict:
    """bond0's mode and options as the kernel reports them (without the runtime state that
    moves by itself: the active slave and the LACP aggregator)."""
    data = info(kernel_links(conn)["bond0"])
    return {k: v for k, v in data.items() if k not in ("active_slave", "ad_info")}


def test_rollback_gives_back_every_option_in_every_mode(conn):
    """A requested rollback of a mode change restores the bond exactly as the kernel had it
    (every option), in each of the seven modes: the snapshot's options must all be accepted
    by ``ip link add`` in that mode.  One loop, not seven tests: each mode's first apply
    replaces the previous mode's bond anyway, and a guest round trip costs about a second."""
    for index, mode in enumerate(ALL_MODES):
        conn.agent("apply", document(f"mode-{index}-a", [bond(mode=mode)]))
        before = bond_settings(conn)
        other = "active-backup" if mode != "active-backup" else "balance-rr"
        pending = conn.agent("apply", document(f"mode-{index}-b", [bond(mode=other)],
                                               check_connectivity=True, rollback_timeout=120))
        assert bond_settings(conn)["mode"] == other
        answer = conn.agent("rollback", {"transaction": pending["transaction"]})
        assert (mode, answer["status"], answer["problems"]) == (mode, "rolled_back", [])
        assert bond_settings(conn) == before, mode
        links = kernel_links(conn)
        assert sorted(n for n, e in links.items() if e.get("master") == "bond0") == BOND_PORTS


def test_option_the_kernel_takes_only_on_a_down_bond_recreates_it(conn):
    """lacp_rate and ad_select change only on a bond that is down, fail_over_mac only on one
    without slaves: the agent re-creates the bond (and the VLAN and bridge port on it)
    instead of failing with "unable to set option because the bond is up"."""
    conn.agent("apply", document("opt-1", [
        bond(mode="802.3ad", options={"lacp_rate": "slow", "ad_select": "stable"}),
        vlan("bond0", 100), bridge("vmnet", "bond0.100")]))
    answer = conn.agent("apply", document("opt-2", [
        bond(mode="802.3ad", options={"lacp_rate": "fast", "ad_select": "count",
                                      "fail_over_mac": "follow"}),
        vlan("bond0", 100), bridge("vmnet", "bond0.100")]))
    assert answer["status"] == "committed"
    assert "link del bond0" in answer["commands"]
    links = kernel_links(conn)
    data = info(links["bond0"])
    assert (data["ad_lacp_rate"], data["ad_select"], data["fail_over_mac"]) == (
        "fast", "count", "follow")
    assert links["bond0.100"]["link"] == "bond0" and links["bond0.100"]["master"] == "vmnet"
    assert sorted(n for n, e in links.items() if e.get("master") == "bond0") == BOND_PORTS
    # A live-changeable option still goes without re-creating anything.
    ifindex = links["bond0"]["ifindex"]
    tweak = conn.agent("apply", document("opt-3", [
        bond(mode="802.3ad", options={"lacp_rate": "fast", "ad_select": "count",
                                      "fail_over_mac": "follow", "miimon": 250}),
        vlan("bond0", 100), bridge("vmnet", "bond0.100")]))
    assert tweak["commands"] == ["link set bond0 type bond miimon 250"]
    assert kernel_links(conn)["bond0"]["ifindex"] == ifindex


def test_confirmed_bond_change_stays(guest):
    """The other side of the race: confirmed over a fresh connection before the deadline,
    the change is committed and the timer does nothing afterwards."""
    with guest.connect() as conn:
        conn.agent("apply", document("cf-1", [bond(options={"miimon": 100})]))
        pending = conn.agent("apply", document("cf-2", [
            bond(options={"miimon": 100}, ports=["eth1", "eth2", "eth4"])],
            check_connectivity=True, rollback_timeout=20))
        assert pending["status"] == "pending"
    with guest.connect() as conn:
        assert conn.agent("confirm", {"transaction": "cf-2"})["status"] == "committed"
        status = conn.agent("status")
        assert (status["pending"], status["committed"]) == (None, "cf-2")
        links = kernel_links(conn)
        assert sorted(n for n, e in links.items() if e.get("master") == "bond0") == [
            "eth1", "eth2", "eth4"]
