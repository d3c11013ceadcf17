"""Faults survived, on real parts: a real Celery worker on Redis, lab hosts (namespaces with
their own sshd), the agent changing real kernel state.

Each test shows what was kept: no apply runs twice at once on a host, an unreachable host
fails alone and a retry succeeds, an agent killed in the middle of its batch leaves the host
as it was before.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from hosts import services as host_services
from hosts.choices import HostStatus, JobHostStatus, JobStatus
from networks import services as network_services
from networks.models import Cluster, DataCenter
from tests.integration.conftest import wait_job
from tests.integration.test_hosts_lab import add_host, link
from tests.lab import AGENT, HOST_PYTHON

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture
def cluster(celery_worker):
    datacenter = network_services.create_datacenter(DataCenter(name="faults-dc"))
    return network_services.create_cluster(Cluster(datacenter=datacenter, name="faults"))


@pytest.mark.django_db(transaction=True)
def test_two_applies_to_one_host_run_one_after_the_other(lab, cluster):
    host = add_host(lab, 0, cluster)
    first = host_services.sync_hosts([host])
    second = host_services.sync_hosts([host])
    wait_job(first)
    wait_job(second)
    a, b = first.hosts.get(), second.hosts.get()
    assert a.status == b.status == JobHostStatus.COMMITTED
    earlier, later = sorted([a, b], key=lambda entry: entry.started)
    assert earlier.finished <= later.started, (earlier.started, earlier.finished,
                                               later.started)


@pytest.mark.django_db(transaction=True)
def test_host_unreachable_mid_fan_out_fails_alone_and_a_retry_succeeds(lab, cluster):
    hosts = [add_host(lab, i, cluster) for i in range(3)]
    lab.stop_sshd(lab.hosts[1])
    try:
        job = wait_job(host_services.sync_hosts(hosts), timeout=120)
    finally:
        lab.start_sshd(lab.hosts[1])
    outcome = dict(job.hosts.values_list("host__name", "status"))
    assert outcome == {hosts[0].name: JobHostStatus.COMMITTED,
                       hosts[1].name: JobHostStatus.FAILED,
                       hosts[2].name: JobHostStatus.COMMITTED}
    assert job.status == JobStatus.PARTIAL
    hosts[1].refresh_from_db()
    assert hosts[1].status == HostStatus.NON_RESPONSIVE
    assert "Cannot connect" in job.hosts.get(host=hosts[1]).error
    retry = wait_job(host_services.sync_hosts([hosts[1]]))
    assert retry.status == JobStatus.COMMITTED


INTERRUPTING_IP = """#!/bin/sh
# Fault injection: the first `ip -batch` that changes the kernel (not a -json read) runs only
# part of its script, then kills the agent that started it (SIGKILL: no cleanup). Every
# other call is the real ip.
case " $* " in *" -json "*) exec /usr/sbin/ip "$@" ;; esac
for arg in "$@"; do
  if [ "$arg" = "-batch" ] && [ ! -e "$FAULT_MARK" ]; then
    : > "$FAULT_MARK"
    head -n "$FAULT_LINES" | /usr/sbin/ip "$@"
    kill -9 "$PPID"
    exit 1
  fi
done
exec /usr/sbin/ip "$@"
"""


def test_agent_killed_mid_batch_leaves_the_previous_state(lab, tmp_path):
    """The rollback timer, armed before the batch, restores the snapshot by itself."""
    host = lab.hosts[2]
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "ip"
    wrapper.write_text(INTERRUPTING_IP)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    names = [f"fault{i}" for i in range(3)]
    document = {
        "version": 1, "transaction": "fault-1", "check_connectivity": True,
        "rollback_timeout": 2,
        "interfaces": [{"name": name, "type": "bridge", "state": "up", "ports": [f"eth{i+1}"],
                        "mtu": 1500} for i, name in enumerate(names)],
    }
    before = json.loads(lab.exec(host, ["ip", "-json", "link"]).stdout)
    env = [f"PATH={wrapper_dir}:/usr/sbin:/usr/bin:/sbin:/bin", f"HOME={host.folder}",
           f"NETPORTAL_STATE_DIR={host.state_dir}", f"NETPORTAL_RESOLV_CONF={host.resolv_conf}",
           f"FAULT_MARK={tmp_path / 'fired'}", "FAULT_LINES=3"]
    proc = lab.exec(host, ["env", "-i", *env, HOST_PYTHON, str(AGENT), "apply"],
                    input=json.dumps(document))
    assert proc.returncode == -9 or proc.returncode == 137, (proc.returncode, proc.stderr)
    assert (tmp_path / "fired").exists()
    assert link(lab, 2, "fault0") is not None, "the interrupted batch changed nothing"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(link(lab, 2, n) for n in names):
        time.sleep(0.2)
    assert [n for n in names if link(lab, 2, n)] == []
    after = json.loads(lab.exec(host, ["ip", "-json", "link"]).stdout)
    assert {i["ifname"]: i.get("master") for i in after} == {
        i["ifname"]: i.get("master") for i in before}
    rc, status = lab.agent(host, "status")
    assert rc == 0 and status["pending"] is None, status
    assert os.path.exists(os.path.join(host.state_dir, "rolled_back.json"))
