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
    return labmod.run_agent(namespace, workdir, command, payload, args, agent_path=AGENT_PATH)


link_dump = labmod.kernel_state


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
