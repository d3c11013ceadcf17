"""Network names with shell metacharacters, quotes, non-ASCII and 256 characters reach hosts
safely: stored as given, implemented on hosts under the ``on`` + UUID name (RULES.md), in a
desired state the agent validates; on a real kernel (a lab host: a namespace of tests/lab.py,
the agent run with `ip netns exec`) the bridge appears under that safe name and nothing
else changes. And no product code runs a shell (``git grep``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hosts import state
from hosts.models import Host, HostNic, NetworkAttachment
from networks.models import Network
from tests import lab as labmod

from .test_agent_fuzz import SAFE_NAME, agent

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ["a;rm -rf /", "$(reboot)", "`reboot`", "it's \"quoted\" \\", "ネットワーク",
           "n" * 256]
IDS = ["semicolon", "subshell", "backticks", "quotes", "non-ascii", "256-chars"]


def _setup(api, world, name, host) -> tuple[Network, dict]:
    """Create the network through the API, attach it to the cluster and to the host's eth1,
    and compile the host's desired state."""
    created = api.post("/api/networks/", {"datacenter": world.dc.pk, "name": name},
                       format="json")
    assert created.status_code == 201, created.data
    network = Network.objects.get(pk=created.data["id"])
    assert network.name == name and created.data["name"] == name
    assert api.post("/api/cluster-networks/", {"cluster": world.cluster.pk,
                                                "network": network.pk, "required": False},
                    format="json").status_code == 201
    setup = api.post(f"/api/hosts/{host.pk}/setup-networks/",
                     {"attachments": [{"network": name, "interface": "eth1"}]},
                     format="json")
    assert setup.status_code == 202, setup.data
    return network, state.compile_state(host, transaction="tx-hostile",
                                        check_connectivity=False)


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_name_compiles_to_a_safe_document(name, api, world):
    network, document = _setup(api, world, name, world.host)
    assert network.on_host_name == "on" + network.uuid.hex[:13]
    assert SAFE_NAME.match(network.on_host_name)
    names = [i["name"] for i in document["interfaces"]]
    assert network.on_host_name in names
    assert all(SAFE_NAME.match(n) for n in names), names
    assert name not in json.dumps(document, ensure_ascii=False)
    doc, problems = agent.validate_document(json.loads(json.dumps(document)))
    assert problems == []
    bridge = next(i for i in doc["interfaces"] if i["name"] == network.on_host_name)
    assert bridge["type"] == "bridge" and bridge["ports"] == ["eth1"]
    # The nmstate export names the same safe device.
    assert network.on_host_name in state.nmstate_yaml(document)


def test_no_shell_in_the_product():
    """No ``shell=True``, ``os.system`` or ``os.popen`` in the product's code (tests and
    benchmarks are not shipped); ruff's S602/S604/S605 keep it so."""
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    product = ["portal", "networks", "hosts", "manage.py"]
    proc = subprocess.run(["git", "grep", "-n", "-E", r"shell\s*=\s*True|os\.system\(|"
                           r"os\.popen\(", "--", *product], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1, proc.stdout  # 1: no match
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--",
                                *product], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split()
    for path in untracked:
        if path.endswith(".py"):
            assert not re.search(r"shell\s*=\s*True", (ROOT / path).read_text()), path


# --- On a real kernel -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_host(tmp_path_factory):
    reason = labmod.require_lab_tools()
    if reason:
        pytest.skip(f"lab unavailable: {reason}")
    with labmod.Lab(1, nics=3, base_dir=str(tmp_path_factory.mktemp("lab"))) as lab:
        yield lab, lab.hosts[0]


def kernel_links(lab, host):
    proc = subprocess.run([labmod.IP, "-n", host.namespace, "-json", "-d", "link", "show"],
                          capture_output=True, text=True, check=True)
    return {e["ifname"]: ((e.get("linkinfo") or {}).get("info_kind"), e.get("master"),
                          e["mtu"]) for e in json.loads(proc.stdout)}


def kernel_addresses(lab, host):
    proc = subprocess.run([labmod.IP, "-n", host.namespace, "-json", "addr", "show"],
                          capture_output=True, text=True, check=True)
    return sorted((e["ifname"], a["local"], a["prefixlen"]) for e in json.loads(proc.stdout)
                  for a in e.get("addr_info", []) if a.get("scope") != "link")


@pytest.mark.lab
@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_name_on_a_real_host(name, lab_host, api, world):
    lab, lab_node = lab_host
    # The network comes in through the API (as in the test above); the lab host carries it
    # alone on eth1 (its management address stays on eth0 as the lab built it), so the
    # kernel must show exactly one change.
    created = api.post("/api/networks/", {"datacenter": world.dc.pk, "name": name},
                       format="json")
    assert created.status_code == 201, created.data
    network = Network.objects.get(pk=created.data["id"])
    host = Host.objects.create(name=f"lab-{IDS[HOSTILE.index(name)]}",
                               address=lab_node.address, cluster=world.cluster)
    nics = {nic: HostNic.objects.create(host=host, name=nic) for nic in lab_node.nics}
    NetworkAttachment.objects.create(host=host, network=network, nic=nics["eth1"])
    document = state.compile_state(host, transaction="tx-hostile", check_connectivity=False)
    bridge = network.on_host_name
    links_before, addresses_before = kernel_links(lab, lab_node), kernel_addresses(lab,
                                                                                  lab_node)
    try:
        code, answer = lab.agent(lab_node, "apply", document)
        assert code == 0 and answer["ok"], answer
        assert answer["status"] == "committed"
        links_after = kernel_links(lab, lab_node)
        expected = dict(links_before)
        expected[bridge] = ("bridge", None, 1500)
        expected["eth1"] = (links_before["eth1"][0], bridge, links_before["eth1"][2])
        assert links_after == expected  # the bridge, eth1 in it, and nothing else
        assert kernel_addresses(lab, lab_node) == addresses_before
        assert all(bridge in line or "eth1" in line for line in answer["commands"]), \
            answer["commands"]
    finally:
        labmod.batch([f"link del {bridge}", "link set eth1 nomaster"],
                     namespace=lab_node.namespace, force=True)
        for path in Path(lab_node.state_dir).glob("*"):
            path.unlink()
