"""The host pipeline end to end, on real parts: PostgreSQL (or SQLite), Redis, a real Celery
worker, and three lab hosts (network namespaces with their own OpenSSH server) whose kernel
the agent changes.

Each test starts from an empty database; the lab's hosts keep their kernel state between
tests, and the first apply of each test brings them to what that test's portal wants (the
agent removes the interfaces it created that the new desired state lacks).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest
from django.test import override_settings

from hosts import services as host_services
from hosts import ssh
from hosts.choices import HostKeyState, HostStatus, JobHostStatus, JobStatus
from hosts.models import Host, Job, NetworkAttachment
from networks import rules
from networks import services as network_services
from networks.models import Cluster, DataCenter, Network
from tests import lab as lab_module
from tests.integration.conftest import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration,
              pytest.mark.lab]


@pytest.fixture
def cluster(celery_worker):
    datacenter = network_services.create_datacenter(DataCenter(name="lab-dc"))
    return network_services.create_cluster(Cluster(datacenter=datacenter, name="lab"))


def add_host(lab, index: int, cluster: Cluster) -> Host:
    """Register a lab host as an operator would, giving its key's fingerprint."""
    lab_host = lab.hosts[index]
    lab.authorize(ssh.public_key_line())
    host = host_services.create_host(Host(
        name=lab_host.name, address=lab_host.address, cluster=cluster,
        expected_fingerprint=lab_host.fingerprint))
    job = Job.objects.filter(hosts__host=host).latest("pk")
    wait_job(job)
    host.refresh_from_db()
    return host


def link(lab, index: int, name: str) -> dict | None:
    out = lab.exec(lab.hosts[index], ["ip", "-json", "-d", "addr", "show", "dev", name])
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)[0]


def ipv4(entry: dict) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", [])
            if a.get("family") == "inet"]


def setup(host: Host, **request) -> Job:
    data = {"check_connectivity": True, "connectivity_timeout": 10, **request}
    setup_request, options = host_services.setup_request_from_data(data)
    outcome = host_services.setup_networks(host, setup_request, options=options)
    assert outcome.ok, [v.as_dict() for v in outcome.violations]
    return wait_job(outcome.job)


def static(address: str, prefix: str = "24") -> dict:
    return {"boot_protocol": "static", "address": address, "netmask": prefix}


def test_add_host_pins_key_reports_nics_and_bridges_management(lab, cluster):
    host = add_host(lab, 0, cluster)
    assert host.host_key_state == HostKeyState.APPROVED
    assert host.host_key_fingerprint == lab.hosts[0].fingerprint
    assert set(host.nics.values_list("name", flat=True)) >= {"eth0", "eth1", "eth2", "eth3"}
    bridge = link(lab, 0, "ovirtmgmt")
    assert bridge is not None and bridge["linkinfo"]["info_kind"] == "bridge"
    assert f"{lab.hosts[0].address}/{lab.subnet.prefixlen}" in ipv4(bridge)
    eth0 = link(lab, 0, "eth0")
    assert eth0["master"] == "ovirtmgmt" and ipv4(eth0) == []
    assert host.status == HostStatus.UP, host.status_reason
    attachment = host.attachments.get(network__name="ovirtmgmt")
    assert attachment.nic.name == "eth0" and attachment.in_sync


def test_networks_reach_three_hosts_and_hosts_ping_each_other(lab, cluster):
    hosts = [add_host(lab, i, cluster) for i in range(3)]
    dc = cluster.datacenter
    vm_net = network_services.create_network(Network(datacenter=dc, name="lab_vm"))
    storage = network_services.create_network(Network(datacenter=dc, name="storage",
                                                      vm_network=False, mtu=9000))
    network_services.attach_network(cluster, vm_net, required=False)
    network_services.attach_network(cluster, storage, required=False)
    for i, host in enumerate(hosts):
        job = setup(host, attachments=[
            {"network": "lab_vm", "interface": "eth1", "ipv4": static(f"198.19.1.{10 + i}")},
            {"network": "storage", "interface": "eth2", "ipv4": static(f"198.19.2.{10 + i}")},
        ])
        assert job.status == JobStatus.COMMITTED, list(job.logs.values_list("message"))
        # Confirmed on the apply's own channel: no second connection, no fresh confirm.
        messages = list(job.logs.values_list("message", flat=True))
        assert "Applied; confirming connectivity on the same connection" in messages
        assert not [m for m in messages if "fresh connection" in m], messages
        entry = job.hosts.get()
        agent_log = (Path(lab.hosts[i].state_dir) / "agent.log").read_text()
        assert f"transaction {entry.transaction} confirmed" in agent_log
    for i in range(3):
        bridge = link(lab, i, "lab_vm")
        assert bridge["linkinfo"]["info_kind"] == "bridge"
        assert f"198.19.1.{10 + i}/24" in ipv4(bridge)
        assert link(lab, i, "eth1")["master"] == "lab_vm"
        eth2 = link(lab, i, "eth2")
        assert f"198.19.2.{10 + i}/24" in ipv4(eth2) and eth2["mtu"] == 9000
    for target in ("198.19.1.12", "198.19.2.12"):
        ping = lab.exec(lab.hosts[0], ["ping", "-c", "1", "-W", "2", target])
        assert ping.returncode == 0, ping.stdout + ping.stderr

    # A change of the network's MTU reaches every host that carries it.
    vm_net.mtu = 1400
    network_services.update_network(vm_net)
    job = Job.objects.filter(kind="network_change").latest("pk")
    wait_job(job)
    assert job.status == JobStatus.COMMITTED, list(job.hosts.values_list("error"))
    assert {link(lab, i, "lab_vm")["mtu"] for i in range(3)} == {1400}

    # Removing the network removes it everywhere, and frees the NIC.
    network_services.detach_network(cluster.cluster_networks.get(network=vm_net))
    job = Job.objects.filter(kind="network_change").latest("pk")
    wait_job(job)
    assert job.status == JobStatus.COMMITTED
    for i in range(3):
        assert link(lab, i, "lab_vm") is None
        assert link(lab, i, "eth1").get("master") is None


def test_unchanged_state_reapplied_makes_zero_changes(lab, cluster):
    host = add_host(lab, 0, cluster)
    committed = Path(lab.hosts[0].state_dir) / "committed.json"
    installed = json.loads(committed.read_text())["transaction"]
    job = wait_job(host_services.sync_hosts([host]))
    entry = job.hosts.get()
    assert entry.status == JobHostStatus.COMMITTED
    assert entry.result["status"] == "unchanged" and entry.result["changes"] == 0
    # Judged from a read of the host with the agent's own code in the worker, so the agent
    # did not run: an unchanged apply by the agent would have committed the new transaction.
    assert json.loads(committed.read_text())["transaction"] == installed
    assert entry.transaction == installed
    assert "The host already holds this state: no change made" in job.logs.values_list(
        "message", flat=True)
    host.refresh_from_db()
    assert host.status == HostStatus.UP and host.last_refresh >= job.started


def test_change_cutting_the_management_address_is_rolled_back_by_the_host(lab, cluster):
    host = add_host(lab, 1, cluster)
    prefix = str(lab.subnet.prefixlen)
    elsewhere = str(lab.subnet.network_address + 250)  # in the lab subnet, held by nobody
    job = setup(host, attachments=[{"network": "ovirtmgmt", "interface": "eth0",
                                    "ipv4": static(elsewhere, prefix)}],
                connectivity_timeout=3)
    entry = job.hosts.get()
    assert entry.status == JobHostStatus.ROLLED_BACK, entry.error
    assert "rolled it back" in entry.error
    # The apply's channel died with the address: the portal fell back to a new connection.
    messages = list(job.logs.values_list("message", flat=True))
    assert "Confirming connectivity over a fresh connection" in messages, messages
    assert f"{lab.hosts[1].address}/{prefix}" in ipv4(link(lab, 1, "ovirtmgmt"))


def test_changed_host_key_is_refused(lab, cluster):
    """(An unreachable host failing alone in a fan-out: tests/integration/test_faults.py.)"""
    host = add_host(lab, 0, cluster)
    lab.regenerate_host_key(lab.hosts[0])
    job = wait_job(host_services.sync_hosts([host]))
    entry = job.hosts.get()
    assert entry.status == JobHostStatus.FAILED and "changed" in entry.error
    host.refresh_from_db()
    assert host.host_key_state == HostKeyState.CHANGED


def test_required_network_missing_makes_host_non_operational_until_set_up(lab, cluster):
    host = add_host(lab, 2, cluster)
    assert host.status == HostStatus.UP
    storage = network_services.create_network(Network(
        datacenter=cluster.datacenter, name="storage", vm_network=False))
    network_services.attach_network(cluster, storage, required=True)
    host.refresh_from_db()
    assert host.status == HostStatus.NON_OPERATIONAL
    assert "'storage'" in host.status_reason
    setup(host, attachments=[{"network": "storage", "interface": "eth2",
                              "ipv4": static("198.19.2.30")}])
    host.refresh_from_db()
    assert host.status == HostStatus.UP, host.status_reason


def test_hand_change_shows_out_of_sync_and_sync_repairs_it(lab, cluster):
    host = add_host(lab, 0, cluster)
    vm_net = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                     name="lab_vm"))
    network_services.attach_network(cluster, vm_net, required=False)
    setup(host, attachments=[{"network": "lab_vm", "interface": "eth1"}])
    subprocess.run(["ip", "netns", "exec", lab.hosts[0].namespace, "ip", "link", "set",
                    "lab_vm", "mtu", "1400"], check=True)
    wait_job(host_services.refresh_all_hosts())
    attachment = NetworkAttachment.objects.get(host=host, network=vm_net)
    assert not attachment.in_sync
    assert {"property": "mtu", "wanted": 1500, "reported": 1400} in attachment.out_of_sync
    job = wait_job(host_services.sync_hosts([host]))
    assert job.status == JobStatus.COMMITTED
    # The read before the apply found the drift, so the agent applied the repair.
    assert job.hosts.get().result["changes"] >= 1
    attachment.refresh_from_db()
    assert attachment.in_sync, attachment.out_of_sync
    assert link(lab, 0, "lab_vm")["mtu"] == 1500


def test_setup_request_breaking_rules_never_reaches_the_host(lab, cluster):
    host = add_host(lab, 0, cluster)
    before = lab.exec(lab.hosts[0], ["ip", "-json", "link"]).stdout
    request, options = host_services.setup_request_from_data(
        {"removed_attachments": ["ovirtmgmt"]})
    outcome = host_services.setup_networks(host, request, options=options)
    assert [v.code for v in outcome.violations] == ["management_network_removed"]
    assert outcome.job is None
    assert lab.exec(lab.hosts[0], ["ip", "-json", "link"]).stdout == before
    assert rules.CODES["management_network_removed"]


def test_preview_shows_the_exact_commands_and_changes_nothing(lab, cluster):
    host = add_host(lab, 1, cluster)
    vm_net = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                     name="lab_vm"))
    network_services.attach_network(cluster, vm_net, required=False)
    request, options = host_services.setup_request_from_data(
        {"attachments": [{"network": "lab_vm", "interface": "eth1"}]})
    preview = host_services.preview_setup_networks(host, request, options=options)
    assert preview.ok
    job = wait_job(preview.commands_job)
    entry = job.hosts.get()
    assert entry.status == JobHostStatus.COMMITTED, entry.error
    commands = entry.plan["commands"]
    assert any("lab_vm" in line and "bridge" in line for line in commands), commands
    assert any("eth1" in line and "master lab_vm" in line for line in commands), commands
    assert link(lab, 1, "lab_vm") is None  # nothing applied
    assert not NetworkAttachment.objects.filter(host=host, network=vm_net).exists()


def test_unknown_host_key_waits_for_approval_then_host_comes_up(lab, cluster):
    lab.authorize(ssh.public_key_line())
    lab_host = lab.hosts[2]
    host = host_services.create_host(Host(name=lab_host.name, address=lab_host.address,
                                          cluster=cluster))
    job = wait_job(Job.objects.filter(hosts__host=host).latest("pk"))
    entry = job.hosts.get()
    assert entry.status == JobHostStatus.FAILED and "approval" in entry.error
    host.refresh_from_db()
    assert host.host_key_state == HostKeyState.PENDING
    assert host.host_key_fingerprint == lab_host.fingerprint
    assert host.status == HostStatus.INSTALLING
    assert not host.nics.exists()  # nothing ran on the host

    wait_job(host_services.approve_host_key(host, lab_host.fingerprint))
    host.refresh_from_db()
    assert host.host_key_state == HostKeyState.APPROVED
    assert host.status == HostStatus.UP, host.status_reason



# --- Connections kept between jobs (ssh.POOL) -----------------------------------------------


def ssh_clients(lab, index: int) -> set[str]:
    """The client ends (address:port) of the established SSH connections the host sees."""
    out = lab.exec(lab.hosts[index], ["ss", "-Htn", "state", "established", "( sport = :22 )"])
    return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}


def settled(read, expected: int):
    """What ``read()`` gives once it holds ``expected`` items (processes and connections
    take a moment to end), or what it gives after 10 s."""
    deadline = time.monotonic() + 10
    while len(found := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def settled_clients(lab, index: int, expected: int) -> set[str]:
    return settled(lambda: ssh_clients(lab, index), expected)


def test_next_job_reuses_the_open_connection_and_replaces_a_dead_one(lab, cluster):
    host = add_host(lab, 0, cluster)
    ssh.POOL.close_all()
    assert settled_clients(lab, 0, 0) == set()

    job = wait_job(host_services.refresh_hosts([host]))
    assert job.status == JobStatus.COMMITTED
    kept = settled_clients(lab, 0, 1)  # the job ended; its connection stays open
    assert len(kept) == 1 and ssh.POOL.size() == 1
    wait_job(host_services.sync_hosts([host]))
    assert settled_clients(lab, 0, 1) == kept  # the next job came over the same connection

    # The host ends that connection (sshd restarted, host rebooted): the next job notices
    # before sending anything and connects anew.
    lab.stop_sshd(lab.hosts[0])
    lab.start_sshd(lab.hosts[0])
    assert settled_clients(lab, 0, 0) == set()
    job = wait_job(host_services.refresh_hosts([host]))
    assert job.status == JobStatus.COMMITTED, list(job.hosts.values_list("error", flat=True))
    fresh = settled_clients(lab, 0, 1)
    assert len(fresh) == 1 and fresh != kept

    with override_settings(NETPORTAL_SSH_KEEP=0):  # keeping turned off: closed after the job
        ssh.POOL.close_all()
        job = wait_job(host_services.refresh_hosts([host]))
        assert job.status == JobStatus.COMMITTED
        assert settled_clients(lab, 0, 0) == set() and ssh.POOL.size() == 0


def test_kept_connection_serves_only_the_same_pinned_key_portal_key_and_age(lab, cluster):
    host = add_host(lab, 1, cluster)
    ssh.POOL.close_all()
    pkey = ssh.portal_key()[0]
    with ssh.connect_kept(host, pkey) as first:
        assert first.run(["true"])[0] == 0
    assert ssh.POOL.size() == 1

    other_key = paramiko.Ed25519Key.from_private_key_file(lab.make_client_key())
    approved_elsewhere = Host.objects.get(pk=host.pk)
    approved_elsewhere.host_key = other_key.get_base64()  # an operator approved a new key
    assert ssh.POOL.take(approved_elsewhere, pkey) is None
    assert ssh.POOL.take(host, other_key) is None  # the portal's key was rotated
    assert ssh.POOL.size() == 1
    with override_settings(NETPORTAL_SSH_KEEP_MAX=0):  # too old to trust: closed, not reused
        assert ssh.POOL.take(host, pkey) is None
    assert ssh.POOL.size() == 0
    assert first.client.get_transport() is None or not first.client.get_transport().is_active()

    with ssh.connect_kept(host, pkey) as second:
        assert second is not first
    assert ssh.POOL.take(host, pkey) is second  # same host, same keys, young: reused
    second.close()
    with pytest.raises(RuntimeError), ssh.connect_kept(host, pkey):
        raise RuntimeError("a failed step")
    assert ssh.POOL.size() == 0  # a connection whose block raised is closed, not kept

    with override_settings(NETPORTAL_SSH_KEEP=1):  # idle past NETPORTAL_SSH_KEEP: closed
        with ssh.connect_kept(host, pkey) as third:
            assert third.run(["true"])[0] == 0
        assert ssh.POOL.size() == 1
        assert settled(lambda: range(ssh.POOL.size()), 0) == range(0)  # by the reaper alone
        assert settled_clients(lab, 1, 0) == set()


def agent_servers(lab, index: int) -> list[int]:
    """PIDs of the agent's ``serve`` processes on the host."""
    pids = lab_module.run([lab_module.IP, "netns", "pids", lab.hosts[index].namespace],
                          check=False).stdout.split()
    return [int(pid) for pid in pids
            if b"serve" in lab_module.pid_cmdline(int(pid))
            and any(b"agent-" in arg for arg in lab_module.pid_cmdline(int(pid)))]


def settled_servers(lab, index: int, expected: int) -> list[int]:
    return settled(lambda: agent_servers(lab, index), expected)


def test_applies_on_a_kept_connection_share_one_agent_process(lab, cluster):
    """The agent's ``serve`` runs on the kept connection: the next job's apply starts no
    Python on the host; one that died meanwhile is started again; a closed connection
    leaves no agent behind."""
    host = add_host(lab, 2, cluster)
    ssh.POOL.close_all()
    assert settled_servers(lab, 2, 0) == []
    for name in ("kept_a", "kept_b"):
        network = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                           name=name, vm_network=False))
        network_services.attach_network(cluster, network, required=False)

    job = setup(host, attachments=[{"network": "kept_a", "interface": "eth1"}])
    assert job.status == JobStatus.COMMITTED
    [server] = settled_servers(lab, 2, 1)
    job = setup(host, attachments=[{"network": "kept_b", "interface": "eth2"}])
    assert job.status == JobStatus.COMMITTED
    assert agent_servers(lab, 2) == [server]  # the same process applied both
    assert link(lab, 2, "eth2") is not None

    lab_module.kill_pids([server])  # the host ended it (out of memory, an operator)
    job = setup(host, removed_attachments=["kept_a", "kept_b"])
    assert job.status == JobStatus.COMMITTED, list(job.hosts.values_list("error", flat=True))
    [restarted] = settled_servers(lab, 2, 1)
    assert restarted != server

    assert ssh.POOL.close_all() >= 1
    assert settled_servers(lab, 2, 0) == []  # its input ended with the connection


def test_agent_ended_before_answering_is_never_taken_for_a_lost_channel(lab, cluster):
    """A lost channel sends the worker to confirm; an agent that died must not, or the worker
    would confirm whatever part of its batch ran. Killed while it waits for its lock (held
    here by the test), the agent server gives ``agent_no_answer``; nothing was applied; the
    next command on the same connection starts a new server."""
    host = add_host(lab, 0, cluster)
    ssh.POOL.close_all()
    lab_host = lab.hosts[0]
    committed = json.loads((Path(lab_host.state_dir) / "committed.json").read_text())
    document = {**committed["document"], "transaction": "tx-killed", "interfaces": [
        *committed["document"]["interfaces"],
        {"name": "killed_br", "type": "bridge", "state": "up", "ports": [], "stp": False}]}
    outcome: dict = {}

    def apply(conn):
        try:
            outcome["answer"] = conn.agent("apply", document, timeout=30)
        except (ssh.AgentError, ssh.SshError) as exc:
            outcome["error"] = exc

    with ssh.connect_kept(host, ssh.portal_key()[0]) as conn:
        assert conn.agent("status")["pending"] is None
        [server] = settled_servers(lab, 0, 1)
        with open(Path(lab_host.state_dir) / "lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                thread = threading.Thread(target=apply, args=(conn,))
                thread.start()
                time.sleep(1.0)  # the request is with the server, which waits for the lock
                lab_module.kill_pids([server])
                thread.join(30)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        assert not thread.is_alive()
        error = outcome.get("error")
        assert isinstance(error, ssh.AgentError) and error.code == "agent_no_answer", outcome
        assert link(lab, 0, "killed_br") is None
        assert conn.agent("status")["committed"] == committed["transaction"]
        assert settled_servers(lab, 0, 1) not in ([], [server])
