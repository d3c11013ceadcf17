"""Faults of whole processes, on real parts: Celery workers and the web server run as
separate processes (started and ended by PID here) on PostgreSQL and Redis; the hosts are
lab namespaces with their own sshd.

- A worker killed with SIGKILL in the middle of an apply: after a worker starts again, the
  job reaches a definite state and the host is not configured twice.
- Redis stopped: API reads and edits still work, an apply requested meanwhile is kept in
  the database and runs once Redis is back.

These need the test database to be visible to other processes: PostgreSQL, not SQLite's
in-memory test database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from hosts import services as host_services
from hosts import ssh
from hosts import worker as worker_module
from hosts.choices import JobHostStatus, JobStatus
from hosts.models import Host, Job, JobHost
from networks import services as network_services
from networks.models import Cluster, DataCenter, Network
from tests.integration.conftest import wait_job

pytestmark = [pytest.mark.integration, pytest.mark.lab,
              pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("worker and web processes need a shared database: set DATABASE_URL to "
                    "PostgreSQL (SQLite's test database lives in this process's memory)")


def _database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:"
            f"{db.get('PORT') or 5432}/{db['NAME']}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Processes this test started, ended by PID (their whole session) at teardown."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen] = []

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        # The same secret key as this process: the portal's SSH key is encrypted with it.
        env.update(DATABASE_URL=_database_url(), NETPORTAL_DATA_DIR=str(self.tmp_path / "data"),
                   SECRET_KEY=settings.SECRET_KEY,
                   NETPORTAL_JOB_LEASE="3", NETPORTAL_REFRESH_INTERVAL="0",
                   DJANGO_SETTINGS_MODULE="portal.settings", **extra)
        env.pop("CELERY_BROKER_URL", None)
        return env

    def start(self, argv: list[str], name: str, **env) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - closed with the proc
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(**env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log
        self.started.append(proc)
        return proc

    def worker(self, name: str, *, beat: bool = False, **env) -> subprocess.Popen:
        argv = [sys.executable, "-m", "celery", "-A", "portal.celery", "worker", "--pool",
                "threads", "--concurrency", "4", "--loglevel", "INFO", "-n", f"{name}@%h"]
        if beat:
            argv += ["-B", "--schedule", str(self.tmp_path / f"{name}-beat")]
        return self.start(argv, name, **env)

    def kill(self, proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
        proc.log.close()

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            if not proc.log.closed:
                proc.log.close()


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def cluster():
    datacenter = network_services.create_datacenter(DataCenter(name="proc-dc"))
    return network_services.create_cluster(Cluster(datacenter=datacenter, name="proc"))


def _add_host(lab, index, cluster) -> Host:
    lab.authorize(ssh.public_key_line())
    lab_host = lab.hosts[index]
    host = host_services.create_host(Host(name=lab_host.name, address=lab_host.address,
                                          cluster=cluster,
                                          expected_fingerprint=lab_host.fingerprint))
    wait_job(Job.objects.filter(hosts__host=host).latest("pk"))
    host.refresh_from_db()
    return host


def _wait(predicate, timeout: float, step: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def test_worker_killed_during_apply_resumes_and_host_is_configured_once(lab, cluster,
                                                                       processes):
    first = processes.worker("first")
    host = _add_host(lab, 0, cluster)
    network = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                      name="killnet"))
    network_services.attach_network(cluster, network, required=False)
    request, options = host_services.setup_request_from_data(
        {"attachments": [{"network": "killnet", "interface": "eth1"}],
         "connectivity_timeout": 20})
    outcome = host_services.setup_networks(host, request, options=options)
    assert outcome.ok
    job = outcome.job
    caught = _wait(lambda: JobHost.objects.filter(
        job=job, status__in=[JobHostStatus.RUNNING, JobHostStatus.AWAITING_CONFIRMATION]
    ).exists(), timeout=30)
    assert caught, "the worker never started the apply"
    processes.kill(first)  # SIGKILL to the worker's whole process group
    job.refresh_from_db()
    assert job.status not in (JobStatus.COMMITTED, JobStatus.FAILED), "killed too late"

    processes.worker("second")
    time.sleep(4)  # the lost runner's lease (3 s in these processes) lapses
    worker_module.requeue_jobs()  # what beat and every worker start do
    job = wait_job(job, timeout=90)
    entry = job.hosts.get()
    assert job.status == JobStatus.COMMITTED, (entry.status, entry.error)
    assert lab.link(lab.hosts[0], "killnet") is not None
    # Configured once: the agent logs every apply that changed the kernel; this entry's
    # transactions changed it once at most (a resumed apply finds the state in place).
    agent_log = Path(lab.hosts[0].state_dir, "agent.log").read_text()
    applies = [line for line in agent_log.splitlines()
               if f"apply job{job.pk}-{entry.pk}-" in line and " commands, " in line]
    assert len(applies) == 1, applies


def test_redis_stopped_reads_and_edits_work_and_apply_is_kept(lab, cluster, processes,
                                                              tmp_path, admin_user):
    from rest_framework.authtoken.models import Token

    if not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = _free_port()
    redis_argv = ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    redis = processes.start(redis_argv, "redis")
    broker = f"redis://127.0.0.1:{port}/0"
    assert _wait(lambda: _port_open(port), timeout=10, step=0.1)
    web_port = _free_port()
    processes.worker("worker", beat=True, REDIS_URL=broker)
    processes.start([sys.executable, "manage.py", "runserver", "--noreload",
                     f"127.0.0.1:{web_port}"], "web", REDIS_URL=broker)
    assert _wait(lambda: _port_open(web_port), timeout=30, step=0.2)
    token = Token.objects.create(user=admin_user).key
    api = _Api(f"http://127.0.0.1:{web_port}", token)

    lab.authorize(ssh.public_key_line())
    lab_host = lab.hosts[1]
    created = api.post("/api/hosts/", {"name": lab_host.name, "address": lab_host.address,
                                       "cluster": cluster.pk,
                                       "expected_fingerprint": lab_host.fingerprint})
    assert created[0] == 201, created
    host = Host.objects.get(pk=created[1]["id"])
    wait_job(Job.objects.filter(hosts__host=host).latest("pk"), timeout=60)
    network = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                      name="whileout"))
    network_services.attach_network(cluster, network, required=False)

    processes.kill(redis, signal.SIGTERM)
    assert not _port_open(port)
    status, networks = api.get("/api/networks/")
    assert status == 200 and networks["count"] >= 2
    status, _ = api.patch(f"/api/networks/{network.pk}/", {"description": "edited offline"})
    assert status == 200
    status, job = api.post(f"/api/hosts/{host.pk}/setup-networks/", {
        "attachments": [{"network": "whileout", "interface": "eth2"}]})
    assert status == 202, job
    kept = Job.objects.get(pk=job["id"])
    assert kept.status == JobStatus.PENDING and not kept.queued
    assert kept.logs.filter(message__contains="task queue is unavailable").exists()

    processes.start(redis_argv, "redis-again")
    assert _wait(lambda: _port_open(port), timeout=10, step=0.1)
    kept = wait_job(kept, timeout=90)  # beat's sweeper sends it once Redis is back
    assert kept.status == JobStatus.COMMITTED, list(kept.hosts.values_list("error"))
    assert lab.link(lab_host, "whileout") is not None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Api:
    """A tiny JSON client for the web process (stdlib only)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def _call(self, method: str, path: str, body=None):
        import json
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Authorization": f"Token {self.token}",
                     "Content-Type": "application/json", "Host": "127.0.0.1"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path):
        return self._call("GET", path)

    def post(self, path, body):
        return self._call("POST", path, body)

    def patch(self, path, body):
        return self._call("PATCH", path, body)


def test_lab_demo_command_leaves_real_hosts_that_come_up(processes):
    """`manage.py lab up` (README) exits and leaves its hosts running for the worker."""
    from tests import lab as lab_module

    processes.worker("labworker")
    env = processes.env()
    run = [sys.executable, "manage.py", "lab"]
    subprocess.run([*run, "up", "2", "--nics", "1"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    try:
        hosts = list(Host.objects.filter(cluster__name="lab"))
        assert len(hosts) == 2
        for job in Job.objects.filter(hosts__host__in=hosts).distinct():
            wait_job(job, timeout=60)
        assert {h.status for h in Host.objects.filter(pk__in=[h.pk for h in hosts])} == {
            "up"}, list(Host.objects.values_list("name", "status_reason"))
    finally:
        down = subprocess.run([*run, "down"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    prefixes = {h.name.split("-")[0] for h in hosts}
    assert not [lab for lab in lab_module.registered_labs() if lab["prefix"] in prefixes]
    assert not Host.objects.filter(cluster__name="lab").exists()
