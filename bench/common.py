"""Shared pieces of the benchmarks: a fresh PostgreSQL database, a real Celery worker in a
subprocess, lab hosts registered in the portal, timing, tables and docs/benchmarks.md.

Every benchmark uses its own database (``netportal_bench``, dropped and created anew) and
its own Redis database (12), so it never touches the data of the test suite or of a
developer's portal. Connections go to lab addresses (198.18.0.0/15) only.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
CELERY = REPO / ".venv" / "bin" / "celery"
DOCS = REPO / "docs" / "benchmarks.md"
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- Database and Django ----------------------------------------------------------------


def fresh_database(name: str) -> str:
    """Drop and create database ``name`` on the bench PostgreSQL server; its URL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def setup_django(database: str = "netportal_bench") -> str:
    """Point Django at a fresh database and Redis db, migrate; returns the database URL."""
    url = fresh_database(database)
    os.environ["DATABASE_URL"] = url
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("NETPORTAL_REFRESH_INTERVAL", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return url


def drop_database(name: str) -> None:
    from django.db import connections

    connections.close_all()
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- A real worker ----------------------------------------------------------------------


class Worker:
    """``celery -A portal.celery worker`` in a subprocess (its own session, killed by PID)."""

    def __init__(self, pool: str = "threads", concurrency: int = 4, log_path: str | None = None):
        self.pool, self.concurrency = pool, concurrency
        self.log_path = log_path or f"/tmp/netportal-bench-worker-{os.getpid()}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Worker:
        from portal.celery import app

        app.control.purge()
        env = dict(os.environ)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(  # noqa: S603 - argument list
            [str(CELERY), "-A", "portal.celery", "worker", "-P", self.pool,
             "-c", str(self.concurrency), "--loglevel=WARNING", "-n", f"bench{os.getpid()}@%h",
             "--without-mingle", "--without-gossip"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        name = f"bench{os.getpid()}@"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {Path(self.log_path).read_text()[-2000:]}")
            replies = app.control.ping(timeout=0.5) or []
            if any(name in key for reply in replies for key in reply):
                return self
        raise RuntimeError("worker did not answer a ping within 60 s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def _pids(self) -> list[int]:
        """The worker and its children (prefork pool processes)."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        except OSError:
            pass
        return pids

    def cpu(self) -> float:
        """CPU seconds (user + system) of the worker and its pool processes so far."""
        total = 0
        for pid in self._pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def reset_peak(self) -> None:
        for pid in self._pids():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass

    def peak_mb(self) -> float:
        """Peak resident memory (VmHWM, summed over the pool processes) in MiB."""
        total = 0
        for pid in self._pids():
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", text)
            total += int(match.group(1)) if match else 0
        return total / 1024


# --- Lab hosts in the portal ------------------------------------------------------------


def make_cluster(name: str = "bench"):
    from networks import services as network_services
    from networks.models import Cluster, DataCenter

    datacenter = network_services.create_datacenter(DataCenter(name=f"{name}-dc"))
    return network_services.create_cluster(Cluster(datacenter=datacenter, name=name))


def wait_jobs(jobs, timeout: float = 300.0, poll: float = 0.02):
    """Wait until every job is final; returns them refreshed. Bounded."""
    from hosts.choices import JOB_FINAL_STATUSES
    from hosts.models import Job

    ids = [j.pk for j in jobs]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Job.objects.filter(pk__in=ids).exclude(status__in=JOB_FINAL_STATUSES).exists():
            return list(Job.objects.filter(pk__in=ids))
        time.sleep(poll)
    raise RuntimeError(f"jobs {ids} not final after {timeout} s")


def add_lab_hosts(lab, cluster, prefix: str = "b"):
    """Register every lab host as an operator would (address + expected fingerprint) and
    install them all in one add-host job; returns the hosts, all Up."""
    from django.db import transaction

    from hosts import services as host_services
    from hosts import ssh
    from hosts.choices import HostStatus, JobKind
    from hosts.models import Host

    lab.authorize(ssh.public_key_line())
    with transaction.atomic():
        hosts = []
        for lab_host in lab.hosts:
            host = Host(name=f"{prefix}{lab_host.index}", address=lab_host.address,
                        cluster=cluster, expected_fingerprint=lab_host.fingerprint)
            host.full_clean()
            host.save()
            hosts.append(host)
        job = host_services.queue_job(JobKind.ADD_HOST, hosts, description="bench: add hosts")
    job = wait_jobs([job], timeout=600)[0]
    hosts = list(Host.objects.filter(pk__in=[h.pk for h in hosts]).order_by("pk"))
    bad = [(h.name, h.status, h.status_reason) for h in hosts if h.status != HostStatus.UP]
    if bad:
        errors = list(job.hosts.exclude(error="").values_list("host__name", "error")[:5])
        raise RuntimeError(f"hosts not up after install: {bad[:5]} {errors}")
    return hosts


# --- Measuring --------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (every process: the worker, the
    database, and here the lab hosts' sshd, agent and ``ip``, which share these cores)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (also readable in a terminal)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(lines)


def machine() -> str:
    """Machine, date and versions, for the results."""
    import django
    import paramiko

    try:
        ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True,
                                     check=False).stderr.strip()
    except OSError:
        ssh_version = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True,
                            check=False).stdout.strip()
    except OSError:
        pg = "?"
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os_name}, kernel "
            f"{platform.release()}; {os.cpu_count()} cores ({cpu}); load average at start "
            f"{load[0]:.2f}; Python {platform.python_version()}, Django {django.__version__}, "
            f"paramiko {paramiko.__version__}, {ssh_version}, {pg}")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between markers named ``name`` in
    docs/benchmarks.md, so each script rewrites only its own results."""
    DOCS.parent.mkdir(exist_ok=True)
    text = DOCS.read_text() if DOCS.exists() else (
        "# Benchmarks\n\nResults written by the scripts under `bench/` (see "
        "`bench/README.md`); each section is replaced by its script's latest run.\n")
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def dump_json(path: str, data) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str))
