"""The agent against real network stacks: three lab hosts (namespaces with their own sshd).

Why: ordering rules (enslave before address, MTU order, a bond port down before enslaving),
verification, the rollback timer and the confirm/rollback race only show on a real kernel.
Most tests run the agent with `ip netns exec` (fast); the SSH tests go through real OpenSSH
with paramiko, pinning the lab's host key with RejectPolicy as the portal does.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import time

import paramiko
import pytest

pytestmark = pytest.mark.lab

import lab as labmod  # noqa: E402  (path set by conftest)

MGMT_PREFIX = 23


def document(txid, interfaces, **extra):
    return {"version": 1, "transaction": txid, "interfaces": interfaces, **extra}


def ok(lab, host, command, payload=None, args=()):
    rc, answer = lab.agent(host, command, payload, args)
    assert rc == 0 and answer["ok"] is True, answer
    return answer


def net_ip(host, net, prefix=24):
    """The host's address on logical network 198.19.<net>.0/24."""
    return f"198.19.{net}.{10 + host.index}/{prefix}"


def reachable(lab, host, address):
    """ping when iputils-ping is installed, else a TCP connect to the peer's sshd."""
    for _ in range(3):
        if shutil.which("ping"):
            proc = lab.exec(host, ["ping", "-c1", "-W1", "-n", address])
        else:
            code = (f"import socket; socket.create_connection(('{address}', 22), 1).close()")
            proc = lab.exec(host, [labmod.HOST_PYTHON, "-c", code])
        if proc.returncode == 0:
            return True
    return False


def master(lab, host, name):
    return (lab.link(host, name) or {}).get("master")


def networks_doc(host, txid):
    """A VM network (bridge lab_vm on eth1) and a non-VM network (address on eth2)."""
    return document(txid, [
        {"name": "lab_vm", "type": "bridge", "state": "up", "ports": ["eth1"], "stp": False,
         "ipv4": {"method": "static", "addresses": [net_ip(host, 1)]},
         "ipv6": {"method": "none"}},
        {"name": "eth2", "type": "ethernet", "state": "up",
         "ipv4": {"method": "static", "addresses": [net_ip(host, 2)]}},
    ])


# --- report ----------------------------------------------------------------------------


def test_report_lists_nics(lab):
    host = lab.hosts[0]
    answer = ok(lab, host, "report")
    by_name = {i["name"]: i for i in answer["interfaces"]}
    assert sorted(by_name) == ["eth0", "eth1", "eth2", "eth3"]
    for nic in host.nics:
        kernel = lab.link(host, nic)
        assert by_name[nic]["mac"] == kernel["address"]
        assert by_name[nic]["mtu"] == 1500
        assert by_name[nic]["type"] == "veth"
        assert by_name[nic]["state"] == "up"
        assert by_name[nic]["speed"] is None or by_name[nic]["speed"] > 0
    assert by_name["eth0"]["ipv4"] == [f"{host.address}/{MGMT_PREFIX}"]
    assert by_name["eth0"]["dhcp"] is False
    assert by_name["eth1"]["ipv4"] == []
    assert answer["managed"] == []
    assert answer["routes"]["default"] is None


# --- networks --------------------------------------------------------------------------


def test_vm_and_non_vm_networks_then_removal(lab):
    h1, h2, h3 = lab.hosts
    for host in lab.hosts:
        answer = ok(lab, host, "apply", networks_doc(host, f"tx-net-{host.name}"))
        assert answer["status"] == "committed"
        assert answer["changes"] == len(answer["commands"]) > 0
        link = lab.link(host, "lab_vm")
        assert link["linkinfo"]["info_kind"] == "bridge"
        assert master(lab, host, "eth1") == "lab_vm"
        assert lab.addresses(host, "lab_vm") == [net_ip(host, 1)]
        assert lab.addresses(host, "eth2") == [net_ip(host, 2)]
    assert reachable(lab, h1, net_ip(h2, 1).split("/")[0])
    assert reachable(lab, h1, net_ip(h3, 2).split("/")[0])
    assert reachable(lab, h3, net_ip(h1, 1).split("/")[0])

    # The same state again: nothing to do, the kernel is not called.
    answer = ok(lab, h1, "apply", networks_doc(h1, "tx-net-again"))
    assert (answer["status"], answer["changes"], answer["commands"]) == ("unchanged", 0, [])
    assert ok(lab, h1, "status")["managed"] == ["lab_vm"]

    # Removal: explicitly absent on h1, dropped from the document on h2.
    gone = document("tx-rm-1", [{"name": "lab_vm", "type": "bridge", "state": "absent"}])
    assert ok(lab, h1, "apply", gone)["status"] == "committed"
    dropped = document("tx-rm-2", [{"name": "eth2", "type": "ethernet",
                                    "ipv4": {"method": "static",
                                             "addresses": [net_ip(h2, 2)]}}])
    answer = ok(lab, h2, "apply", dropped)
    assert answer["commands"] == ["link del lab_vm"]
    for host in (h1, h2):
        assert lab.link(host, "lab_vm") is None
        assert master(lab, host, "eth1") is None
        assert ok(lab, host, "status")["managed"] == []
    assert lab.addresses(h2, "eth2") == [net_ip(h2, 2)]
    assert not reachable(lab, h1, net_ip(h3, 1).split("/")[0])


def test_mtu_raise_and_lower_in_order(lab):
    host = lab.hosts[0]
    up = document("tx-mtu-1", [
        {"name": "lab_big", "type": "bridge", "mtu": 9000, "ports": ["eth3"]},
        {"name": "eth3", "type": "ethernet", "mtu": 9000}])
    answer = ok(lab, host, "apply", up)
    assert lab.link(host, "eth3")["mtu"] == 9000
    assert lab.link(host, "lab_big")["mtu"] == 9000
    raise_order = [c for c in answer["commands"] if " mtu " in c]
    assert raise_order.index("link set eth3 mtu 9000") < raise_order.index(
        "link set lab_big mtu 9000")
    down = document("tx-mtu-2", [
        {"name": "lab_big", "type": "bridge", "mtu": 4000, "ports": ["eth3"]},
        {"name": "eth3", "type": "ethernet", "mtu": 4000}])
    answer = ok(lab, host, "apply", down)
    assert answer["commands"] == ["link set lab_big mtu 4000", "link set eth3 mtu 4000"]
    assert lab.link(host, "eth3")["mtu"] == 4000
    assert lab.link(host, "lab_big")["mtu"] == 4000


def test_dry_run_changes_nothing(lab):
    host = lab.hosts[1]
    before = (lab.link(host, "eth1"), lab.addresses(host, "eth2"))
    answer = ok(lab, host, "apply", networks_doc(host, "tx-dry"), args=["--dry-run"])
    assert answer["status"] == "planned" and answer["dry_run"] is True
    assert "link add lab_vm type bridge stp_state 0" in answer["commands"]
    assert answer["changes"] == len(answer["commands"])
    flagged = dict(networks_doc(host, "tx-dry-2"), dry_run=True)
    assert ok(lab, host, "apply", flagged)["commands"] == answer["commands"]
    assert lab.link(host, "lab_vm") is None
    assert (lab.link(host, "eth1"), lab.addresses(host, "eth2")) == before
    status = ok(lab, host, "status")
    assert status["committed"] is None and status["pending"] is None


def test_refuses_to_delete_an_interface_it_did_not_create(lab):
    host = lab.hosts[2]
    lab.exec(host, ["ip", "link", "add", "handbr", "type", "bridge"], check=True)
    rc, answer = lab.agent(host, "apply", document("tx-hand", [
        {"name": "handbr", "type": "bridge", "state": "absent"}]))
    assert rc == 2 and answer["error"]["code"] == "not_managed"
    assert lab.link(host, "handbr") is not None
    # Not naming it leaves it alone too.
    ok(lab, host, "apply", networks_doc(host, "tx-other"))
    ok(lab, host, "apply", document("tx-other-2", []))
    assert lab.link(host, "handbr") is not None
    assert lab.link(host, "lab_vm") is None


def test_failed_apply_is_rolled_back(lab):
    """A gateway that is not on-link makes `ip -batch` fail half-way: everything reverts."""
    host = lab.hosts[0]
    doc = document("tx-fail", [
        {"name": "lab_fail", "type": "bridge", "ports": ["eth3"],
         "ipv4": {"method": "static", "addresses": [net_ip(host, 5)]}}],
        routes={"default": {"gateway": "198.19.99.1", "interface": "lab_fail"}})
    rc, answer = lab.agent(host, "apply", doc)
    assert rc == 3 and answer["error"]["code"] == "apply_failed"
    assert answer["error"]["rolled_back"] is True
    assert lab.link(host, "lab_fail") is None
    assert master(lab, host, "eth3") is None
    assert lab.link(host, "eth3")["operstate"] == "UP"
    status = ok(lab, host, "status")
    assert status["managed"] == [] and status["committed"] is None


# --- transactions ----------------------------------------------------------------------


def test_lost_connectivity_is_rolled_back_by_the_timer(lab):
    host = lab.hosts[1]
    cut = document("tx-cut", [{"name": "eth0", "type": "ethernet",
                               "ipv4": {"method": "none"}}],
                   check_connectivity=True, rollback_timeout=3)
    started = time.monotonic()
    answer = ok(lab, host, "apply", cut)
    assert answer["status"] == "pending"
    assert answer["commands"] == [f"address del {host.address}/{MGMT_PREFIX} dev eth0"]
    assert lab.addresses(host, "eth0") == []
    assert not labmod.banner(host.address, 22)
    while time.monotonic() - started < 10 and not lab.addresses(host, "eth0"):
        time.sleep(0.2)
    assert lab.addresses(host, "eth0") == [f"{host.address}/{MGMT_PREFIX}"]
    assert time.monotonic() - started >= 2.5
    rc, answer = lab.agent(host, "confirm", {"transaction": "tx-cut"})
    assert rc != 0 and answer["error"]["code"] == "already_rolled_back"
    status = ok(lab, host, "status")
    assert status["pending"] is None and status["committed"] is None
    assert labmod.banner(host.address, 22)


def test_explicit_rollback(lab):
    host = lab.hosts[2]
    answer = ok(lab, host, "apply", dict(networks_doc(host, "tx-rb"), check_connectivity=True))
    assert answer["status"] == "pending"
    assert lab.link(host, "lab_vm") is not None
    rc, answer = lab.agent(host, "apply", networks_doc(host, "tx-rb-2"))
    assert rc != 0 and answer["error"]["code"] == "pending_transaction"
    answer = ok(lab, host, "rollback", {"transaction": "tx-rb"})
    assert answer["status"] == "rolled_back"
    assert lab.link(host, "lab_vm") is None
    assert lab.addresses(host, "eth2") == []
    assert ok(lab, host, "status")["pending"] is None


def test_confirm_and_timer_never_both_win(lab):
    """Confirm at the deadline: whichever wins, the other does nothing and state agrees."""
    host = lab.hosts[1]
    doc = dict(networks_doc(host, "tx-race"), check_connectivity=True, rollback_timeout=1)
    assert ok(lab, host, "apply", doc)["status"] == "pending"
    time.sleep(0.9)
    rc, answer = lab.agent(host, "confirm", {"transaction": "tx-race"})
    time.sleep(1.2)
    status = ok(lab, host, "status")
    assert status["pending"] is None
    if rc == 0:
        assert answer["status"] == "committed" and status["committed"] == "tx-race"
        assert lab.link(host, "lab_vm") is not None
    else:
        assert answer["error"]["code"] == "already_rolled_back"
        assert status["committed"] is None and lab.link(host, "lab_vm") is None


def assert_committed_timer_gone(lab, host, timer, txid):
    """After a confirmation: the rollback timer ends, `txid` is committed, nothing pends,
    and networks_doc's bridge holds eth1."""
    deadline = time.monotonic() + 3
    while labmod.pid_alive(timer) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not labmod.pid_alive(timer)
    status = ok(lab, host, "status")
    assert status["pending"] is None and status["committed"] == txid
    assert status["managed"] == ["lab_vm"]
    assert master(lab, host, "eth1") == "lab_vm"


def converse(lab, host, document):
    """``apply --await-confirm`` inside the host, its pipes held open: (process, first
    answer). The caller sends the next line (or closes stdin) and reads the rest."""
    argv = [labmod.IP, "netns", "exec", host.namespace, "env", "-i", *lab.agent_env(host),
            labmod.HOST_PYTHON, str(labmod.AGENT), "apply", "--report", "--await-confirm"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps(document) + "\n")
    proc.stdin.flush()
    return proc, json.loads(proc.stdout.readline())


def test_confirm_on_the_same_channel_commits_and_ends_the_timer(lab):
    """The conversation the portal holds: one agent process answers pending, then takes the
    confirmation on its stdin and commits; the timer is gone, nothing is left pending."""
    host = lab.hosts[0]
    doc = dict(networks_doc(host, "tx-conv"), check_connectivity=True, rollback_timeout=30)
    proc, first = converse(lab, host, doc)
    try:
        assert first["status"] == "pending" and first["transaction"] == "tx-conv"
        assert any(i["name"] == "lab_vm" for i in first["report"]["interfaces"])
        timer = ok(lab, host, "status")["pending"]["timer_pid"]
        assert labmod.pid_alive(timer)
        out, err = proc.communicate(json.dumps({"transaction": "tx-conv"}) + "\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out) == {"ok": True, "status": "committed", "transaction": "tx-conv"}
    assert_committed_timer_gone(lab, host, timer, "tx-conv")


def test_conversation_ended_without_confirmation_leaves_it_to_the_timer(lab):
    """Input ends after the pending answer (the portal's channel was lost): the agent exits
    at once with nothing more to say, and the timer rolls the change back."""
    host = lab.hosts[1]
    doc = dict(networks_doc(host, "tx-lost"), check_connectivity=True, rollback_timeout=2)
    proc, first = converse(lab, host, doc)
    try:
        assert first["status"] == "pending"
        out, _err = proc.communicate("", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == ""
    assert lab.link(host, "lab_vm") is not None  # still pending
    deadline = time.monotonic() + 10
    while lab.link(host, "lab_vm") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.link(host, "lab_vm") is None
    status = ok(lab, host, "status")
    assert status["pending"] is None and status["committed"] is None


def test_confirmation_of_another_transaction_on_the_channel_is_refused(lab):
    host = lab.hosts[2]
    doc = dict(networks_doc(host, "tx-mine"), check_connectivity=True, rollback_timeout=30)
    proc, first = converse(lab, host, doc)
    try:
        assert first["status"] == "pending"
        out, _err = proc.communicate(json.dumps({"transaction": "tx-other"}) + "\n",
                                     timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert json.loads(out)["error"]["code"] == "unknown_transaction"
    assert ok(lab, host, "status")["pending"]["transaction"] == "tx-mine"
    assert ok(lab, host, "rollback", {"transaction": "tx-mine"})["status"] == "rolled_back"


def test_serve_answers_commands_in_turn_on_one_process(lab):
    """``serve``, which the portal runs on the SSH connections it keeps: a hello line, then
    request lines answered in turn by one process; a pending apply takes its confirmation
    line; bad lines are refused without ending the service; two requests in one write are
    both answered; end of input ends it."""
    host = lab.hosts[1]
    argv = [labmod.IP, "netns", "exec", host.namespace, "env", "-i", *lab.agent_env(host),
            labmod.HOST_PYTHON, str(labmod.AGENT), "serve"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.PIPE, text=True)

    def ask(*lines):
        proc.stdin.write("".join(line + "\n" for line in lines))
        proc.stdin.flush()
        return [json.loads(proc.stdout.readline()) for _ in lines]

    def request(command, payload=None, flags=()):
        return json.dumps({"command": command, "flags": list(flags), "payload": payload or {}})

    try:
        assert json.loads(proc.stdout.readline()) == {"ok": True, "serving": "1.0"}
        doc = dict(networks_doc(host, "tx-serve"), check_connectivity=True, rollback_timeout=30)
        [first] = ask(request("apply", doc, ("--report", "--await-confirm")))
        assert first["status"] == "pending" and first["report"]["interfaces"]
        timer = ok(lab, host, "status")["pending"]["timer_pid"]
        [confirmed] = ask(json.dumps({"transaction": "tx-serve"}))
        assert confirmed == {"ok": True, "status": "committed", "transaction": "tx-serve"}
        assert_committed_timer_gone(lab, host, timer, "tx-serve")

        [again] = ask(request("apply", networks_doc(host, "tx-serve-2")))
        assert again["status"] == "unchanged" and again["changes"] == 0
        assert master(lab, host, "eth1") == "lab_vm"
        refused = ask("not json", json.dumps({"command": "serve"}),
                      request("apply", {"version": 1, "transaction": "tx-bad",
                                        "interfaces": [{"name": "eth1", "type": "nope"}]}),
                      request("report", flags=("--bogus",)))
        assert [r["error"]["code"] for r in refused] == ["bad_request", "bad_request",
                                                          "invalid_state", "bad_request"]
        status, report = ask(request("status"), request("report"))
        assert status["committed"] == "tx-serve-2" and status["pending"] is None
        assert "lab_vm" in {i["name"] for i in report["interfaces"]}
        out, _err = proc.communicate("", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == ""


def test_hand_change_is_reported_and_restore_brings_back_the_committed_state(lab):
    host = lab.hosts[0]
    ok(lab, host, "apply", networks_doc(host, "tx-restore"))
    lab.exec(host, ["ip", "link", "set", "eth1", "mtu", "1400"], check=True)
    lab.exec(host, ["ip", "address", "flush", "dev", "lab_vm"], check=True)
    report = {i["name"]: i for i in ok(lab, host, "report")["interfaces"]}
    assert report["eth1"]["mtu"] == 1400
    assert report["lab_vm"]["ipv4"] == []
    assert report["lab_vm"]["ports"] == ["eth1"]
    assert report["eth1"]["master"] == "lab_vm"
    answer = ok(lab, host, "restore")
    assert answer["status"] == "committed"
    assert f"address replace {net_ip(host, 1)} dev lab_vm" in answer["commands"]
    assert lab.addresses(host, "lab_vm") == [net_ip(host, 1)]
    # The document named no MTU, so the hand-set MTU stays: restore is not a reset.
    assert lab.link(host, "eth1")["mtu"] == 1400


def read_without_agent(lab, host, agent_module):
    """The agent's READ_SCRIPT run in the host as sshd would run it, parsed by the agent's
    code outside the host (what the portal does for scans and resyncs)."""
    proc = lab.exec(host, ["env", "-i", *lab.agent_env(host), "sh", "-c",
                           agent_module.READ_SCRIPT])
    assert proc.returncode == 0, proc.stderr
    return agent_module.parse_read(proc.stdout)


def test_read_without_the_agent_is_the_agents_own_report(lab, agent_module):
    """A host with a bridge, a non-VM network, a default route and DNS: the shell read
    parsed outside gives exactly the agent's `report`, its managed list and committed
    state, without a Python process on the host."""
    host = lab.hosts[0]
    doc = dict(networks_doc(host, "tx-read"), dns=["198.18.0.53"],
               routes={"default": {"gateway": str(lab.gateway), "interface": "eth0"}})
    ok(lab, host, "apply", doc)
    read = read_without_agent(lab, host, agent_module)
    report = ok(lab, host, "report")
    assert agent_module.report_of(read["kernel"], read["managed"]) == report
    assert report["dns"] == ["198.18.0.53"] and report["routes"]["default"] is not None
    assert read["managed"] == ["lab_vm"] and read["pending"] is False
    assert read["committed"]["transaction"] == "tx-read"


def test_unchanged_judged_from_the_read_as_the_agent_judges(lab, agent_module):
    """`unchanged_by` says "no change" exactly when the agent would answer unchanged and has
    the same document committed; a hand change, a new document or a pending transaction
    each make it False."""
    host = lab.hosts[1]
    doc = networks_doc(host, "tx-same")
    ok(lab, host, "apply", doc)
    again = networks_doc(host, "tx-same-2")
    assert agent_module.unchanged_by(again, read_without_agent(lab, host, agent_module))
    answer = ok(lab, host, "apply", again)  # and the agent agrees
    assert answer["status"] == "unchanged" and answer["changes"] == 0

    other = document("tx-other", [*networks_doc(host, "x")["interfaces"],
                                  {"name": "eth3", "type": "ethernet", "state": "up",
                                   "mtu": 1400}])
    assert not agent_module.unchanged_by(other, read_without_agent(lab, host, agent_module))

    lab.exec(host, ["ip", "address", "flush", "dev", "lab_vm"], check=True)
    assert not agent_module.unchanged_by(again, read_without_agent(lab, host, agent_module))
    ok(lab, host, "apply", networks_doc(host, "tx-repair"))

    pending = dict(networks_doc(host, "tx-pending"), check_connectivity=True)
    assert ok(lab, host, "apply", pending)["status"] == "unchanged"  # nothing to change...
    lab.exec(host, ["ip", "address", "flush", "dev", "eth2"], check=True)
    assert ok(lab, host, "apply", dict(pending, transaction="tx-p2"))["status"] == "pending"
    read = read_without_agent(lab, host, agent_module)
    assert read["pending"] is True
    assert not agent_module.unchanged_by(networks_doc(host, "tx-p3"), read)
    assert ok(lab, host, "rollback", {"transaction": "tx-p2"})["status"] == "rolled_back"


def test_default_route_and_dns(lab):
    host = lab.hosts[2]
    doc = document("tx-route", [], routes={"default": {"gateway": str(lab.gateway),
                                                        "interface": "eth0"}},
                   dns=["198.18.0.53", "198.18.0.54"])
    answer = ok(lab, host, "apply", doc)
    assert answer["changes"] == 2
    report = ok(lab, host, "report")
    assert report["routes"]["default"] == {"gateway": str(lab.gateway), "interface": "eth0"}
    assert report["dns"] == ["198.18.0.53", "198.18.0.54"]
    assert ok(lab, host, "apply", doc)["status"] == "unchanged"
    ok(lab, host, "apply", document("tx-route-2", [], routes={"default": None}, dns=[]))
    report = ok(lab, host, "report")
    assert report["routes"]["default"] is None and report["dns"] == []


# --- over SSH, as the portal does it ----------------------------------------------------


@pytest.fixture(scope="module")
def client_key(lab3, tmp_path_factory):
    path = tmp_path_factory.mktemp("client") / "id_ed25519"
    subprocess.run([labmod.SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)],  # noqa: S603
                   check=True)
    lab3.authorize(path.with_suffix(".pub").read_text())
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def connect(host, key, host_key_line=None):
    """paramiko with the host key pinned and RejectPolicy, every timeout set."""
    kind, data = (host_key_line or host.host_key).split()[:2]
    client = paramiko.SSHClient()
    client.get_host_keys().add(host.address, kind, paramiko.Ed25519Key(
        data=base64.b64decode(data)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host.address, port=host.port, username="root", pkey=key,
                   allow_agent=False, look_for_keys=False, timeout=5, banner_timeout=5,
                   auth_timeout=5, channel_timeout=5)
    return client


def ssh_run(client, command, payload=None):
    stdin, stdout, stderr = client.exec_command(command, timeout=30)
    if payload is not None:  # a command that reads no input may be gone before a write
        stdin.write(json.dumps(payload))
    stdin.channel.shutdown_write()
    out, err = stdout.read(), stderr.read()
    return stdout.channel.recv_exit_status(), out.decode(), err.decode()


def upload_agent(client, host):
    """SFTP to a temporary name, rename, check the hash: never run a half-written agent."""
    data = labmod.AGENT.read_bytes()
    final = f"{host.folder}/netportal_agent.py"
    with client.open_sftp() as sftp:
        sftp.putfo(__import__("io").BytesIO(data), final + ".part")
        sftp.posix_rename(final + ".part", final)
    rc, out, _err = ssh_run(client, f"sha256sum {final}")
    assert rc == 0 and out.split()[0] == hashlib.sha256(data).hexdigest()
    return final


def test_over_ssh_apply_pending_then_confirm_on_a_fresh_connection(lab, client_key):
    host = lab.hosts[0]
    client = connect(host, client_key)
    try:
        agent = upload_agent(client, host)
        rc, out, err = ssh_run(client, "echo $HOME; command -v python3")
        assert out.split() == [host.folder, "/usr/bin/python3"], err
        rc, out, err = ssh_run(client, f"python3 {agent} report")
        assert rc == 0, err
        report = json.loads(out)
        eth0 = next(i for i in report["interfaces"] if i["name"] == "eth0")
        assert eth0["ipv4"] == [f"{host.address}/{MGMT_PREFIX}"]
        doc = dict(networks_doc(host, "tx-ssh"), check_connectivity=True, rollback_timeout=30)
        rc, out, err = ssh_run(client, f"python3 {agent} apply", doc)
        assert rc == 0, out + err
        assert json.loads(out)["status"] == "pending"
    finally:
        client.close()
    status = ok(lab, host, "status")
    timer = status["pending"]["timer_pid"]
    assert status["pending"]["timer_alive"] is True
    client = connect(host, client_key)
    try:
        rc, out, err = ssh_run(client, f"python3 {agent} confirm", {"transaction": "tx-ssh"})
    finally:
        client.close()
    assert rc == 0 and json.loads(out)["status"] == "committed", out + err
    assert_committed_timer_gone(lab, host, timer, "tx-ssh")


def test_ssh_refuses_unknown_or_changed_host_keys_and_unreachable_hosts(lab, client_key):
    host = lab.hosts[2]
    other = lab.hosts[1].host_key
    with pytest.raises(paramiko.BadHostKeyException):
        connect(host, client_key, host_key_line=other)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(host.address, username="root", pkey=client_key, allow_agent=False,
                       look_for_keys=False, timeout=5, banner_timeout=5, auth_timeout=5)
    client.close()
    old_key, old_fingerprint = host.host_key, host.fingerprint
    lab.regenerate_host_key(host)
    assert host.fingerprint != old_fingerprint
    with pytest.raises(paramiko.BadHostKeyException):
        connect(host, client_key, host_key_line=old_key)
    connect(host, client_key).close()
    lab.stop_sshd(host)
    try:
        with pytest.raises((paramiko.ssh_exception.NoValidConnectionsError, OSError)):
            connect(host, client_key)
    finally:
        lab.start_sshd(host)
    connect(host, client_key).close()


def test_fingerprint_matches_ssh_keygen(lab):
    host = lab.hosts[0]
    out = subprocess.run([labmod.SSH_KEYGEN, "-lf", host.host_key_path + ".pub"],  # noqa: S603
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == host.fingerprint


# --- bonds and VLANs: need drivers this kernel may lack ---------------------------------


def need(kind):
    supported, reason = labmod.kernel_supports(kind)
    if not supported:
        pytest.skip(reason)


def test_bond_with_vlan_and_bridge(lab):
    need("bond")
    need("vlan")
    host = lab.hosts[0]
    doc = document("tx-bond", [
        {"name": "bond0", "type": "bond", "mode": "active-backup", "mtu": 9000,
         "options": {"miimon": "100"}, "ports": ["eth1", "eth2"]},
        {"name": "bond0.100", "type": "vlan", "base": "bond0", "vlan": 100, "mtu": 9000},
        {"name": "lab_v100", "type": "bridge", "mtu": 9000, "ports": ["bond0.100"],
         "ipv4": {"method": "static", "addresses": [net_ip(host, 7)]}}])
    answer = ok(lab, host, "apply", doc)
    assert answer["status"] == "committed"
    bond = lab.link(host, "bond0")
    assert bond["linkinfo"]["info_data"]["mode"] == "active-backup"
    assert master(lab, host, "eth1") == "bond0" and master(lab, host, "eth2") == "bond0"
    assert lab.link(host, "bond0.100")["linkinfo"]["info_data"]["id"] == 100
    assert master(lab, host, "bond0.100") == "lab_v100"
    assert ok(lab, host, "apply", doc)["status"] == "unchanged"
    # A mode change re-creates the bond (and the VLAN on it).
    doc["interfaces"][0]["mode"] = "balance-xor"
    doc["interfaces"][0]["options"] = {"miimon": "100", "xmit_hash_policy": "layer3+4"}
    answer = ok(lab, host, "apply", doc)
    assert answer["commands"][:3] == ["link del lab_v100", "link del bond0.100",
                                      "link del bond0"] or "link del bond0" in answer["commands"]
    assert lab.link(host, "bond0")["linkinfo"]["info_data"]["mode"] == "balance-xor"
    ok(lab, host, "apply", document("tx-bond-rm", []))
    assert lab.link(host, "bond0") is None and master(lab, host, "eth1") is None


def test_vlan_on_a_nic(lab):
    need("vlan")
    h1, h2 = lab.hosts[0], lab.hosts[1]
    for host in (h1, h2):
        ok(lab, host, "apply", document(f"tx-vlan-{host.name}", [
            {"name": "eth3.42", "type": "vlan", "base": "eth3", "vlan": 42,
             "ipv4": {"method": "static", "addresses": [net_ip(host, 42)]}}]))
    assert reachable(lab, h1, net_ip(h2, 42).split("/")[0])
