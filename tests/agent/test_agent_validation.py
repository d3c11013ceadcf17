"""The agent refuses a malformed desired state as a whole, before it touches the kernel.

Why it matters: a half-applied change on a remote host is the worst outcome; the portal must
get every problem at once (`invalid_state` with the list) and the host must be untouched.
"""

import copy
import json
from pathlib import Path

import pytest

from .conftest import link_dump, run_agent_in_namespace

pytestmark = pytest.mark.lab

import lab as labmod  # noqa: E402  (path set by conftest)

SPEC_EXAMPLE = {
    "version": 1, "transaction": "tx-example",
    "interfaces": [
        {"name": "ovirtmgmt", "type": "bridge", "state": "up", "mtu": 1500, "ports": ["eth0"],
         "stp": False, "ipv4": {"method": "static", "addresses": ["198.18.0.11/24"]},
         "ipv6": {"method": "none"}},
        {"name": "bond0", "type": "bond", "state": "up", "mtu": 9000, "mode": "802.3ad",
         "options": {"miimon": "100", "xmit_hash_policy": "layer3+4"},
         "ports": ["eth1", "eth2"]},
        {"name": "bond0.100", "type": "vlan", "state": "up", "base": "bond0", "vlan": 100,
         "mtu": 9000, "ipv4": {"method": "static", "addresses": ["198.19.1.11/24"]}},
        {"name": "eth1", "type": "ethernet", "state": "up", "mtu": 9000},
        {"name": "oldnet", "type": "bridge", "state": "absent"}],
    "routes": {"default": {"gateway": "198.18.0.1", "interface": "ovirtmgmt"}},
    "dns": ["198.18.0.53"],
    "check_connectivity": True, "rollback_timeout": 120,
}

BAD_DOCUMENT = {
    "version": 1, "transaction": "tx bad id",
    "interfaces": [
        {"name": "this-name-is-far-too-long", "type": "bridge"},
        {"name": "br0", "type": "bridge", "mtu": 40, "ports": ["eth1", "eth1"]},
        {"name": "br1", "type": "bridge", "ports": ["eth1"]},
        {"name": "bond0", "type": "bond", "mode": "round-robin", "ports": ["eth2"]},
        {"name": "v1", "type": "vlan", "base": "br1", "vlan": 5000},
        {"name": "v2", "type": "vlan", "base": "br0", "vlan": 7, "mtu": 9000},
        {"name": "br0x", "type": "bridge", "mtu": 1500, "ports": []},
        {"name": "v3", "type": "vlan", "base": "br0x", "vlan": 8, "mtu": 9000},
        {"name": "eth3", "type": "ethernet", "state": "absent"},
        {"name": "eth2x", "type": "wifi"},
        {"name": "eth2", "type": "ethernet",
         "ipv4": {"method": "static", "addresses": ["198.18.300.1/24", "198.18.0.5"]},
         "ipv6": {"method": "dhcp", "addresses": ["2001:db8::1/64"]}},
    ],
    "routes": {"default": {"gateway": "not-an-ip", "interface": "br0"}},
    "dns": ["198.18.0.53", "nonsense"],
    "rollback_timeout": 0,
}


def test_spec_example_passes_phase_one(agent_module):
    doc, problems = agent_module.validate_document(copy.deepcopy(SPEC_EXAMPLE))
    assert problems == []
    assert doc["interfaces"][1]["mode"] == "802.3ad"
    assert doc["interfaces"][1]["options"] == {"miimon": "100", "xmit_hash_policy": "layer3+4"}


def test_every_problem_is_listed(agent_module):
    _doc, problems = agent_module.validate_document(copy.deepcopy(BAD_DOCUMENT))
    text = "\n".join(problems)
    expected = [
        "transaction:", "this-name-is-far-too-long", "(br0).mtu", "listed twice",
        "port eth1 is already used by br0", "is not a bond mode", "vlan: 5000",
        "v3: mtu 9000 is above its base br0x's mtu 1500", "never deleted",
        "'wifi' is not one of", "198.18.300.1/24", "'198.18.0.5' is not an address",
        "method dhcp carries no addresses", "routes.default.gateway", "dns[1]",
        "rollback_timeout",
    ]
    missing = [needle for needle in expected if needle not in text]
    assert not missing, f"not reported: {missing}\nreported:\n{text}"


@pytest.mark.parametrize("change, needle", [
    (lambda d: d["interfaces"][1]["options"].update(lacp_rate="fast", bogus="1"),
     "unknown bond option 'bogus'"),
    (lambda d: d["interfaces"][1].update(mode=9), "is not a bond mode"),
    (lambda d: d["interfaces"][2].update(vlan=-1), "0..4094"),
    (lambda d: d["interfaces"][0].update(ports=["ovirtmgmt"]), "its own port"),
    (lambda d: d["interfaces"][3].update(mtu=65536), "68..65535"),
    (lambda d: d["interfaces"][3].update(mtu=True), "68..65535"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.update(extra=1), "unknown top-level keys"),
    (lambda d: d["interfaces"].append({"name": "bond0", "type": "bridge"}), "listed twice"),
    (lambda d: d["interfaces"][1].update(ports=["eth1", "ovirtmgmt"]),
     "a bond port cannot be a bridge"),
    (lambda d: d["interfaces"][2].update(base="oldnet"), "marked absent"),
    (lambda d: d["interfaces"][0].update(ports=["bond0.100"]) or
     d["interfaces"][2].update(base="ovirtmgmt"), "cycle"),
    (lambda d: d.update(dns=["198.18.0.53"] * 4), "at most 3"),
    # Found by the fuzzer: a route naming a list as its interface raised a TypeError.
    (lambda d: d["routes"]["default"].update(interface=[]), "is not a valid interface name"),
])
def test_single_problem_is_found(agent_module, change, needle):
    doc = copy.deepcopy(SPEC_EXAMPLE)
    change(doc)
    _doc, problems = agent_module.validate_document(doc)
    assert any(needle in p for p in problems), problems


def test_bond_mode_numbers_and_option_numbers_normalize(agent_module):
    doc = copy.deepcopy(SPEC_EXAMPLE)
    doc["interfaces"][1].update(mode=4, options={"miimon": 100, "xmit_hash_policy": "2"})
    clean, problems = agent_module.validate_document(doc)
    assert problems == []
    assert clean["interfaces"][1]["mode"] == "802.3ad"
    assert clean["interfaces"][1]["options"] == {"miimon": "100", "xmit_hash_policy": "layer2+3"}


def test_mode_dependent_option_is_refused(agent_module):
    doc = copy.deepcopy(SPEC_EXAMPLE)
    doc["interfaces"][1].update(mode="active-backup", options={"lacp_rate": "fast"})
    _clean, problems = agent_module.validate_document(doc)
    assert any("not supported in mode active-backup" in p for p in problems), problems


@pytest.fixture
def scratch(tmp_path):
    with labmod.scratch_namespace(nics=4, folder=str(tmp_path)) as (namespace, workdir):
        yield namespace, workdir


def test_refused_in_a_namespace_without_touching_the_kernel(scratch):
    namespace, workdir = scratch
    before = link_dump(namespace)
    rc, answer = run_agent_in_namespace(namespace, workdir, "apply", BAD_DOCUMENT)
    assert rc == 2
    assert answer["ok"] is False
    assert answer["error"]["code"] == "invalid_state"
    assert len(answer["error"]["problems"]) >= 15
    assert link_dump(namespace) == before
    assert not Path(workdir, "state", "committed.json").exists()


def test_kernel_references_are_checked_before_any_change(scratch):
    """Phase two: ports, bases and NICs must exist; all problems still come back together."""
    namespace, workdir = scratch
    doc = {"version": 1, "transaction": "tx-refs", "interfaces": [
        {"name": "br9", "type": "bridge", "ports": ["eth1", "eth9"],
         "ipv4": {"method": "static", "addresses": ["198.19.9.1/24"]}},
        {"name": "eth8", "type": "ethernet", "mtu": 1500},
        {"name": "v9", "type": "vlan", "base": "nosuch", "vlan": 9},
        {"name": "eth2.5", "type": "vlan", "base": "eth2", "vlan": 5, "mtu": 9000}],
        "routes": {"default": {"gateway": "198.19.9.254", "interface": "gone0"}}}
    before = link_dump(namespace)
    rc, answer = run_agent_in_namespace(namespace, workdir, "apply", doc)
    assert rc == 2 and answer["error"]["code"] == "invalid_state"
    text = "\n".join(answer["error"]["problems"])
    for needle in ("port eth9 does not exist", "eth8: no such NIC", "base nosuch",
                   "above its base eth2's mtu 1500", "interface gone0"):
        assert needle in text
    assert link_dump(namespace) == before


def test_bad_requests(scratch):
    namespace, workdir = scratch
    rc, answer = run_agent_in_namespace(namespace, workdir, "apply", "{not json")
    assert rc == 2 and answer["error"]["code"] == "bad_request"
    rc, answer = run_agent_in_namespace(namespace, workdir, "explode", {})
    assert rc == 2 and answer["error"]["code"] == "bad_request"
    rc, answer = run_agent_in_namespace(namespace, workdir, "confirm", {})
    assert rc == 2 and answer["error"]["code"] == "bad_request"
    rc, answer = run_agent_in_namespace(namespace, workdir, "confirm", {"transaction": "nope"})
    assert rc != 0 and answer["error"]["code"] == "unknown_transaction"
    rc, answer = run_agent_in_namespace(namespace, workdir, "restore", {})
    assert rc != 0 and answer["error"]["code"] == "nothing_committed"


def test_report_in_a_bare_namespace(scratch):
    namespace, workdir = scratch
    rc, answer = run_agent_in_namespace(namespace, workdir, "report")
    assert rc == 0 and answer["ok"] is True
    names = [i["name"] for i in answer["interfaces"]]
    assert sorted(names) == ["eth1", "eth2", "eth3", "eth4"]
    assert all(i["type"] == "veth" for i in answer["interfaces"])
    assert answer["routes"] == {"default": None, "default6": None}
    assert json.loads(json.dumps(answer)) == answer


# --- planning against a described kernel (bond and VLAN order, also where no driver exists)


def fake_link(name, kind="veth", mtu=1500, up=True, master=None, ports=(), ipv4=(), **extra):
    item = {"name": name, "ifindex": 0, "type": kind, "mac": None, "mtu": mtu, "up": up,
            "operstate": "up", "master": master, "ports": list(ports), "vlan": None,
            "base": None, "mode": None, "options": {}, "stp": None,
            "ipv4": [{"address": a, "dynamic": False} for a in ipv4], "ipv6": []}
    item.update(extra)
    return item


def fake_kernel(*links):
    return {"links": {link["name"]: link for link in links}, "default": None,
            "default6": None, "dns": []}


def plan(agent_module, raw, kernel, managed):
    doc, problems = agent_module.validate_document(copy.deepcopy(raw))
    assert problems == []
    problems, refused = agent_module.check_against_kernel(doc, kernel, managed)
    assert (problems, refused) == ([], [])
    return agent_module.build_plan(doc, kernel, managed)


def test_plan_orders_the_spec_example(agent_module):
    kernel = fake_kernel(fake_link("eth0", ipv4=["198.18.0.11/24"]), fake_link("eth1"),
                         fake_link("eth2"), fake_link("oldnet", "bridge", stp=False))
    result = plan(agent_module, SPEC_EXAMPLE, kernel, ["oldnet"])
    cmds = result["commands"]
    at = cmds.index
    assert cmds[0] == "link del oldnet"
    assert at("link add bond0 type bond mode 802.3ad miimon 100 xmit_hash_policy layer3+4") \
        < at("link set eth1 down") < at("link set eth1 master bond0") \
        < at("link add link bond0 name bond0.100 type vlan id 100")
    assert at("link add ovirtmgmt type bridge stp_state 0") < at("link set eth0 master ovirtmgmt")
    # MTU raised bottom-up, after every device exists.
    assert at("link add link bond0 name bond0.100 type vlan id 100") < at(
        "link set eth1 mtu 9000") < at("link set bond0 mtu 9000") < at(
        "link set bond0.100 mtu 9000")
    assert at("link set bond0.100 mtu 9000") < at("link set eth1 up") < at("link set bond0 up")
    # The port loses its address, the bridge gets it, then the route moves.
    assert at("address del 198.18.0.11/24 dev eth0") < at(
        "address replace 198.18.0.11/24 dev ovirtmgmt") < at(
        "route replace default via 198.18.0.1 dev ovirtmgmt")
    assert cmds[-1] == "route replace default via 198.18.0.1 dev ovirtmgmt"
    assert result["created"] == ["bond0", "bond0.100", "ovirtmgmt"]
    assert result["deleted"] == ["oldnet"]
    assert result["dns"] == ["198.18.0.53"]
    assert result["changes"] == len(cmds) + 1


def bonded_kernel():
    return fake_kernel(
        fake_link("eth1", mtu=9000, master="bond0"), fake_link("eth2", mtu=9000, master="bond0"),
        fake_link("bond0", "bond", mtu=9000, ports=["eth1", "eth2"], mode="802.3ad",
                  options={"miimon": "100", "xmit_hash_policy": "layer3+4"}),
        fake_link("bond0.100", "vlan", mtu=9000, vlan=100, base="bond0",
                  ipv4=["198.19.1.11/24"]))


def bond_document(mode, options, mtu):
    return {"version": 1, "transaction": "tx-bond", "interfaces": [
        {"name": "bond0", "type": "bond", "mode": mode, "options": options, "mtu": mtu,
         "ports": ["eth1", "eth2"]},
        {"name": "bond0.100", "type": "vlan", "base": "bond0", "vlan": 100, "mtu": mtu,
         "ipv4": {"method": "static", "addresses": ["198.19.1.11/24"]}},
        {"name": "eth1", "type": "ethernet", "mtu": mtu}]}


def test_plan_recreates_a_bond_whose_mode_changes(agent_module):
    result = plan(agent_module, bond_document("active-backup", {"miimon": "100"}, 9000),
                  bonded_kernel(), ["bond0", "bond0.100"])
    cmds = result["commands"]
    assert cmds[:2] == ["link del bond0.100", "link del bond0"]
    assert cmds[2] == "link add bond0 type bond mode active-backup miimon 100"
    assert cmds.index("link set eth2 down") < cmds.index("link set eth2 master bond0")
    assert "address replace 198.19.1.11/24 dev bond0.100" in cmds
    assert result["deleted"] == []


def test_plan_lowers_mtu_top_down_and_sets_options_in_place(agent_module):
    doc = bond_document("802.3ad", {"miimon": "200", "xmit_hash_policy": "layer3+4"}, 1500)
    cmds = plan(agent_module, doc, bonded_kernel(), ["bond0", "bond0.100"])["commands"]
    assert cmds == ["link set bond0 type bond miimon 200", "link set bond0.100 mtu 1500",
                    "link set bond0 mtu 1500", "link set eth1 mtu 1500"]


def test_verify_reads_a_matching_kernel_as_unchanged(agent_module):
    doc, _ = agent_module.validate_document(
        bond_document("802.3ad", {"miimon": "100", "xmit_hash_policy": "2"}, 9000))
    kernel = bonded_kernel()
    agent_module.check_against_kernel(doc, kernel, ["bond0", "bond0.100"])
    assert agent_module.verify(doc, kernel, set()) == [
        "bond0: xmit_hash_policy layer3+4, want layer2+3"]
    kernel["links"]["bond0"]["options"]["xmit_hash_policy"] = "layer2+3"
    assert agent_module.verify(doc, kernel, set()) == []
