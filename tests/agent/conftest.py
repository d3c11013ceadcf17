"""Fixtures for the host agent tests: a real lab of namespaces with sshd, no Django, no DB.

Why a conftest of its own: these tests need root, `ip netns` and OpenSSH's sshd; where any is
missing every test here is skipped with the reason (never silently), so the rest of the suite
still runs on a developer laptop.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import lab as labmod  # noqa: E402  (needs the path above)

AGENT_PATH = labmod.AGENT
HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs root, network namespaces and OpenSSH")


def pytest_collection_modifyitems(config, items):
    """Skip every test of this folder, with the reason, when the lab cannot run here."""
    reason = labmod.require_lab_tools()
    if not reason:
        return
    marker = pytest.mark.skip(reason=f"lab unavailable: {reason}")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(marker)


def load_agent_module():
    """The agent as a module (it is a standalone script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("netportal_agent", AGENT_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def agent_module():
    return load_agent_module()


def run_agent_in_namespace(namespace, workdir, command, payload=None, args=()):
    """Run the agent inside a bare namespace with its state in `workdir` -> (rc, answer)."""
    env = [f"PATH={labmod.HOST_PATH}", f"HOME={workdir}",
           f"NETPORTAL_STATE_DIR={workdir}/state",
           f"NETPORTAL_RESOLV_CONF={workdir}/resolv.conf"]
    argv = [labmod.IP, "netns", "exec", namespace, "env", "-i", *env, labmod.HOST_PYTHON,
            str(AGENT_PATH), command, *args]
    text = payload if isinstance(payload, str) else json.dumps(payload or {})
    proc = subprocess.run(argv, input=text, capture_output=True, text=True,  # noqa: S603
                          timeout=60, check=False)
    return proc.returncode, json.loads(proc.stdout)


def link_dump(namespace):
    """What the agent could change, from `ip -json -d link` and `ip -json addr`.

    Counters, operstate and IPv6 link-local addresses drift by themselves right after links
    come up (carrier, DAD), so they are left out of the comparison.
    """
    def ip_json(*what):
        proc = subprocess.run([labmod.IP, "-n", namespace, "-json", *what],  # noqa: S603
                              capture_output=True, text=True, check=True)
        return json.loads(proc.stdout)

    links = sorted((e["ifname"], (e.get("linkinfo") or {}).get("info_kind"), e["mtu"],
                    e.get("master"), "UP" in e.get("flags", []), e.get("address"))
                   for e in ip_json("-d", "link", "show"))
    addrs = sorted((e["ifname"], a["family"], a["local"], a["prefixlen"])
                   for e in ip_json("addr", "show") for a in e.get("addr_info", [])
                   if a.get("scope") != "link")
    return links, addrs


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    """Three lab hosts for the whole module; torn down even when a test fails."""
    with labmod.Lab(3, nics=3, base_dir=str(tmp_path_factory.mktemp("lab"))) as lab:
        yield lab


def reset_host(lab, host):
    """Put a lab host back to its pristine state, whatever a test (or the agent) left."""
    for pid in subprocess.run([labmod.IP, "netns", "pids", host.namespace],  # noqa: S603
                              capture_output=True, text=True, check=False).stdout.split():
        if b"_timer" in labmod.pid_cmdline(int(pid)):
            labmod.kill_pids([int(pid)])
    links = json.loads(subprocess.run(  # noqa: S603
        [labmod.IP, "-n", host.namespace, "-json", "link", "show"], capture_output=True,
        text=True, check=True).stdout)
    extra = [e["ifname"] for e in links if e["ifname"] not in ["lo"] + host.nics]
    lines = [f"link del {name}" for name in extra]
    for nic in host.nics:
        lines += [f"link set {nic} nomaster", f"address flush dev {nic}",
                  f"link set {nic} mtu 1500", f"link set {nic} up"]
    lines.append(f"address add {host.address}/23 dev eth0")
    lines.append("route flush table main type unicast proto boot")
    labmod.batch(lines, namespace=host.namespace, force=True)
    state = Path(host.state_dir)
    for path in state.glob("*"):
        path.unlink()
    Path(host.resolv_conf).write_text("# lab host resolv.conf\n")


@pytest.fixture
def lab(lab3):
    """The module's lab, reset after each test so tests never see each other's leftovers."""
    yield lab3
    for host in lab3.hosts:
        reset_host(lab3, host)
