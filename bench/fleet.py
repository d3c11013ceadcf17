"""Fleet apply, no-op resync and drift scan on N lab hosts, against its peers, in one run.

    .venv/bin/python bench/fleet.py --hosts 10 50 100 [--reps 3]

For each N: a lab of N hosts (network namespaces with their own sshd), registered in the
portal (fresh PostgreSQL database, a real ``celery -A portal.celery worker`` subprocess on
Redis). The change: attach one new VM network ("bench", a bridge on eth1) with a static
address to every host. Measured, interleaved per repetition:

* portal, one job (``hosts.services.setup_networks_many``: one validated request per host,
  ONE job with N entries), connectivity check on, and off: from the call to every entry
  committed;
* portal, N API calls (``POST /api/hosts/{id}/setup-networks/``, one job per host), check
  on: what an operator without the fan-out service would script;
* no-op resync (``sync_hosts``: one job, the whole desired state pushed again, nothing
  changed) and drift scan (``refresh_hosts``: one job, every host's state read and
  compared); kernel changes counted from the agents' answers stored in JobHost.result;
* peers doing the same ``ip`` commands (taken from the agent's own plan): bare paramiko, one
  thread per host with a fresh connection each (the floor), a sequential SSH loop, Ansible
  ``raw`` with forks = N as users run it (defaults), and tuned (curve25519 key exchange,
  connections kept open from a previous run); for the scans, bare paramiko reading the same
  kernel state (``ip -json`` link, addr, routes).

Client CPU: the worker process (portal) or the peer's process tree. Peak memory: the
worker's VmHWM, reset before each run. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ANSIBLE_VENV = Path(os.environ.get("BENCH_ANSIBLE_VENV", common.REPO / "bench" / ".venv"))
NETWORK = "bench"
READ_COMMAND = ("ip -json -d link show && ip -json addr show && ip -json route show && "
                "ip -json -6 route show")


def address(index: int) -> str:
    return f"198.19.1.{10 + index}"


# --- Portal -----------------------------------------------------------------------------


def entries_summary(jobs) -> dict:
    from hosts.models import JobHost

    rows = list(JobHost.objects.filter(job__in=jobs).values("status", "result", "plan"))
    committed = sum(1 for r in rows if r["status"] == "committed")
    changes = sum(int((r["result"] or {}).get("changes") or 0) for r in rows)
    commands = sum(len((r["plan"] or {}).get("commands") or []) for r in rows)
    return {"entries": len(rows), "committed": committed, "changes": changes,
            "plan_commands": commands}


def timed_portal(worker, action) -> dict:
    """Run ``action`` (which returns jobs) and wait for them; time, CPU, memory."""
    worker.reset_peak()
    cpu_worker, cpu_self = worker.cpu(), common.self_cpu()
    machine = common.machine_cpu()
    started = time.perf_counter()
    jobs = action()
    cpu_call = common.self_cpu() - cpu_self
    jobs = common.wait_jobs(jobs)
    wall = time.perf_counter() - started
    machine = common.machine_cpu() - machine
    time.sleep(0.3)  # the worker's last writes after the final status
    summary = entries_summary(jobs)
    if os.environ.get("BENCH_DEBUG"):
        for job in jobs:
            entries = list(job.hosts.values_list("started", "finished"))
            queued = (job.started - job.created).total_seconds()
            ran = (job.finished - job.started).total_seconds()
            print(f"    job {job.pk}: queued after {queued:.3f} s, ran {ran:.3f} s; entries "
                  f"start {min(e[0] for e in entries) - job.started} .. "
                  f"{max(e[0] for e in entries) - job.started}, finish "
                  f"{min(e[1] for e in entries) - job.started} .. "
                  f"{max(e[1] for e in entries) - job.started}")
    return {"wall": wall, "cpu": worker.cpu() - cpu_worker + cpu_call, "machine": machine,
            "peak_mb": worker.peak_mb(), "jobs": len(jobs),
            "ok": summary["committed"] == summary["entries"], **summary}


def close_kept() -> None:
    """Have the worker close the SSH connections it keeps (a Celery control command)."""
    from portal.celery import app

    replies = app.control.broadcast("close_ssh_connections", reply=True, timeout=5)
    if not replies:
        raise RuntimeError("the worker did not answer close_ssh_connections")


def one_job_apply(hosts, check: bool):
    from hosts import services
    from networks import rules

    requests = [(host, rules.SetupRequest(attachments=(rules.AttachmentData(
        NETWORK, "eth1", rules.IpConfig("static", address(i), "24")),)))
        for i, host in enumerate(hosts, start=1)]
    outcome = services.setup_networks_many(
        requests, options=services.ApplyOptions(check_connectivity=check))
    if not outcome.ok:
        raise RuntimeError(f"rules refused the bench change: {outcome.violations}")
    return [outcome.job]


def one_job_detach(hosts):
    from hosts import services
    from networks import rules

    outcome = services.setup_networks_many(
        [(h, rules.SetupRequest(removed_attachments=(NETWORK,))) for h in hosts],
        options=services.ApplyOptions(check_connectivity=False))
    assert outcome.ok, outcome.violations
    jobs = common.wait_jobs([outcome.job])
    summary = entries_summary(jobs)
    if summary["committed"] != summary["entries"]:
        raise RuntimeError(f"detach failed: {summary}")


def api_apply(client, hosts):
    from hosts.models import Job

    jobs = []
    for i, host in enumerate(hosts, start=1):
        response = client.post(f"/api/hosts/{host.pk}/setup-networks/", {
            "attachments": [{"network": NETWORK, "interface": "eth1",
                             "ipv4": {"boot_protocol": "static", "address": address(i),
                                      "netmask": "24"}}],
            "check_connectivity": True}, format="json")
        if response.status_code != 202:
            raise RuntimeError(f"API answered {response.status_code}: {response.content[:500]}")
        jobs.append(Job(pk=response.json()["id"]))
    return jobs


def api_client():
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    if "testserver" not in settings.ALLOWED_HOSTS:  # the test client's host name
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True})
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Peers ------------------------------------------------------------------------------


def plan_commands(hosts) -> dict[int, str]:
    """Per host, the agent's `ip -batch` lines of the last apply, as one shell line."""
    from hosts.models import JobHost

    commands = {}
    for host in hosts:
        entry = (JobHost.objects.filter(host=host, job__kind="setup_networks")
                 .exclude(plan__commands=[]).latest("pk"))
        lines = entry.plan.get("commands") or []
        commands[host.pk] = " && ".join(f"ip {line}" for line in lines)
    return commands


def lab_cleanup(lab, bridge: str) -> None:
    """Undo a peer's change locally (untimed): delete the bridge it made."""
    from tests.lab import batch

    for lab_host in lab.hosts:
        batch([f"link del {bridge}"], namespace=lab_host.namespace, force=True)


def run_process(argv, env=None, timeout=600) -> dict:
    cpu, machine = common.children_cpu(), common.machine_cpu()
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,  # noqa: S603
                          check=False)
    wall = time.perf_counter() - started
    machine = common.machine_cpu() - machine
    return {"wall": wall, "cpu": common.children_cpu() - cpu, "machine": machine,
            "rc": proc.returncode,
            "stdout": proc.stdout, "stderr": proc.stderr}


def paramiko_peer(workdir, lab, key, commands: list[str], mode: str) -> dict:
    spec = {"key": key, "hosts": [{"address": h.address, "host_key": h.host_key,
                                   "command": cmd} for h, cmd in zip(lab.hosts, commands,
                                                                     strict=True)]}
    path = os.path.join(workdir, f"spec-{mode}.json")
    common.dump_json(path, spec)
    result = run_process([sys.executable, str(Path(__file__).parent / "peers.py"), mode, path])
    answer = json.loads(result["stdout"].strip().splitlines()[-1]) if result["rc"] == 0 else {}
    result["ok"] = result["rc"] == 0 and not answer.get("failed")
    result["detail"] = answer.get("failed") or result["stderr"][-500:]
    return result


class Ansible:
    """ansible-core from PyPI in its own venv; every file of a run in its own folder."""

    def __init__(self, workdir: str, lab, key: str):
        self.dir = os.path.join(workdir, f"ansible-{lab.prefix}")
        os.makedirs(self.dir, exist_ok=True)
        self.lab, self.key = lab, key
        self.playbook = os.path.join(self.dir, "playbook.yml")
        Path(self.playbook).write_text(
            "- hosts: lab\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.raw: \"{{ bench_cmd }}\"\n")
        Path(self.dir, "known_hosts").write_text(
            "".join(h.known_hosts_line + "\n" for h in lab.hosts))
        self.ssh_config = os.path.join(self.dir, "ssh_config")
        Path(self.ssh_config).write_text(
            f"Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.dir}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n")
        self.runs = 0

    @staticmethod
    def available() -> bool:
        return (ANSIBLE_VENV / "bin" / "ansible-playbook").exists()

    @staticmethod
    def version() -> str:
        proc = subprocess.run([str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "--version"],  # noqa: S603
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "ANSIBLE_HOME": tempfile.gettempdir()})
        return proc.stdout.splitlines()[0] if proc.stdout else "?"

    def _inventory(self, commands: list[str]) -> str:
        path = os.path.join(self.dir, f"inventory-{self.runs}.json")
        hosts = {h.name: {"ansible_host": h.address, "bench_cmd": cmd}
                 for h, cmd in zip(self.lab.hosts, commands, strict=True)}
        common.dump_json(path, {"lab": {"hosts": hosts}})
        return path

    def env(self, control_dir: str, tuned: bool) -> dict:
        args = f"-F {self.ssh_config}"
        if tuned:
            args += " -o KexAlgorithms=curve25519-sha256"
        return {**os.environ, "ANSIBLE_HOME": os.path.join(self.dir, "home"),
                "ANSIBLE_LOCAL_TEMP": os.path.join(self.dir, "tmp"),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
                "ANSIBLE_SSH_COMMON_ARGS": args, "ANSIBLE_FORKS": str(len(self.lab.hosts)),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}

    def play(self, commands: list[str], tuned: bool) -> dict:
        """One timed ansible-playbook run. Tuned: a warm-up run (untimed) leaves the
        ControlPersist masters open for the timed one."""
        self.runs += 1
        control_dir = os.path.join(self.dir, f"cp{self.runs}")
        os.makedirs(control_dir)
        env = self.env(control_dir, tuned)
        binary = str(ANSIBLE_VENV / "bin" / "ansible-playbook")
        try:
            if tuned:
                warm = run_process([binary, "-i", self._inventory(["true"] * len(commands)),
                                    self.playbook], env=env)
                if warm["rc"] != 0:
                    return {**warm, "ok": False, "detail": warm["stdout"][-800:]}
            result = run_process([binary, "-i", self._inventory(commands), self.playbook],
                                 env=env)
            result["ok"] = result["rc"] == 0
            result["detail"] = result["stdout"][-800:]
            return result
        finally:
            self.close_masters(control_dir)

    def close_masters(self, control_dir: str) -> None:
        """`ssh -O exit` every master left in this run's control path folder (bounded)."""
        for _ in range(3):
            sockets = [p for p in Path(control_dir).iterdir() if p.is_socket()]
            if not sockets:
                return
            for sock in sockets:
                subprocess.run(["ssh", "-F", self.ssh_config, "-o", f"ControlPath={sock}",  # noqa: S603, S607
                                "-O", "exit", "lab"], capture_output=True, timeout=10,
                               check=False)
            time.sleep(0.2)


# --- One N ------------------------------------------------------------------------------


def bench_n(n: int, reps: int, worker, workdir: str, skip_ansible: bool) -> dict:
    from hosts import services as host_services
    from networks import services as network_services
    from networks.models import Network
    from tests.lab import Lab

    results: dict[str, list] = {}

    def record(name, value):
        results.setdefault(name, []).append(value)
        status = "ok" if value.get("ok", True) else f"FAILED {value.get('detail', '')}"
        print(f"  N={n} {name}: {value['wall']:.2f} s cpu {value.get('cpu', 0):.2f} s "
              f"{status}", flush=True)

    with Lab(n=n, nics=2) as lab:
        started = time.perf_counter()
        cluster = common.make_cluster(f"fleet{n}")
        hosts = common.add_lab_hosts(lab, cluster, prefix=f"f{n}-")
        network = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                           name=NETWORK))
        network_services.attach_network(cluster, network, required=False)
        print(f"N={n}: lab and {n} hosts installed in {time.perf_counter() - started:.1f} s",
              flush=True)
        key = lab.make_client_key()
        client = api_client()
        ansible = Ansible(workdir, lab, key) if not skip_ansible else None
        commands = None
        for rep in range(reps):
            print(f" repetition {rep + 1} of {reps}", flush=True)
            # Each portal measure twice: over the connections the previous job left open
            # (the worker keeps them, as ControlPersist does), and over new ones (the
            # worker told to close them first, as after NETPORTAL_SSH_KEEP seconds idle).
            for suffix in ("_new", ""):
                def measure(name, action, suffix=suffix):
                    if suffix:
                        close_kept()
                    record(name + suffix, timed_portal(worker, action))

                measure("portal_on", lambda: one_job_apply(hosts, True))
                if commands is None:
                    by_pk = plan_commands(hosts)
                    commands = [by_pk[h.pk] for h in hosts]
                # Nothing changed since: a resync and a drift scan find it so.
                measure("resync", lambda: [host_services.sync_hosts(
                    hosts, description="bench resync")])
                measure("scan", lambda: [host_services.refresh_hosts(hosts)])
                one_job_detach(hosts)
                measure("portal_off", lambda: one_job_apply(hosts, False))
                one_job_detach(hosts)
            record("portal_api", timed_portal(worker, lambda: api_apply(client, hosts)))
            one_job_detach(hosts)
            record("paramiko", paramiko_peer(workdir, lab, key, commands, "fanout"))
            lab_cleanup(lab, NETWORK)
            record("paramiko_read", paramiko_peer(workdir, lab, key, [READ_COMMAND] * n,
                                                  "fanout"))
            if n <= 50 or rep == 0:
                record("sequential", paramiko_peer(workdir, lab, key, commands, "sequential"))
                lab_cleanup(lab, NETWORK)
            if ansible:
                record("ansible", ansible.play(commands, tuned=False))
                lab_cleanup(lab, NETWORK)
                record("ansible_tuned", ansible.play(commands, tuned=True))
                lab_cleanup(lab, NETWORK)
    return results


def summarize(all_results: dict[int, dict]) -> tuple[str, list[str]]:
    rows_names = [
        ("portal_on", "portal, one job, connectivity check on, connections kept"),
        ("portal_on_new", "portal, one job, connectivity check on, new connections"),
        ("portal_off", "portal, one job, connectivity check off, connections kept"),
        ("portal_off_new", "portal, one job, connectivity check off, new connections"),
        ("portal_api", "portal, N API calls (N jobs), check on"),
        ("paramiko", "bare paramiko, thread per host (floor)"),
        ("sequential", "plain sequential SSH loop (paramiko)"),
        ("ansible", "Ansible raw, forks = N, defaults"),
        ("ansible_tuned", "Ansible raw, curve25519 + warm ControlPersist"),
        ("resync", "portal no-op resync (sync job), connections kept"),
        ("resync_new", "portal no-op resync (sync job), new connections"),
        ("scan", "portal drift scan (refresh job), connections kept"),
        ("scan_new", "portal drift scan (refresh job), new connections"),
        ("paramiko_read", "bare paramiko reading the same state"),
    ]
    ns = sorted(all_results)
    headers = ["how"] + [f"N={n} wall s" for n in ns] + [f"N={n} CPU s" for n in ns] + [
        f"N={n} machine CPU s" for n in ns] + [f"N={n} peak MiB" for n in ns]
    rows = []
    for key, label in rows_names:
        if not any(key in all_results[n] for n in ns):
            continue
        walls = [common.median([r["wall"] for r in all_results[n].get(key, [])]) for n in ns]
        cpus = [common.median([r.get("cpu") for r in all_results[n].get(key, [])])
                for n in ns]
        machines = [common.median([r.get("machine") for r in all_results[n].get(key, [])])
                    for n in ns]
        peaks = [common.median([r.get("peak_mb") for r in all_results[n].get(key, [])])
                 for n in ns]
        failed = [n for n in ns if any(not r.get("ok", True) for r in all_results[n].get(key, []))]
        rows.append([label + (f" (FAILED at N={failed})" if failed else "")] + walls + cpus
                    + machines + [p if p else None for p in peaks])

    def med(n, key):
        return common.median([r["wall"] for r in all_results[n].get(key, [])])

    ratio_rows = []
    for n in ns:
        for suffix, how in (("", "kept"), ("_new", "new")):
            def ratio(a, b, n=n):
                x, y = med(n, a), med(n, b)
                return x / y if x and y else None
            ratio_rows.append([
                n, how, ratio("portal_on" + suffix, "ansible"),
                ratio("portal_on" + suffix, "paramiko"), ratio("portal_off" + suffix, "paramiko"),
                ratio("portal_api", "portal_on") if not suffix else None,
                ratio("resync" + suffix, "paramiko_read"), ratio("scan" + suffix, "paramiko_read"),
                ratio("ansible", "paramiko"), ratio("ansible_tuned", "paramiko")])
    ratios = common.table(
        ["N", "portal connections", "portal(on)/Ansible", "portal(on)/paramiko",
         "portal(off)/paramiko", "API path/one job", "resync/paramiko read",
         "scan/paramiko read", "Ansible/paramiko", "Ansible tuned/paramiko"], ratio_rows)
    goals = []

    def judge(text, value, limit):
        verdict = "met" if value is not None and value <= limit else "missed"
        goals.append(f"{text}: {common.fmt(value)} → {verdict}")

    for suffix, how in (("", "connections kept"), ("_new", "new connections")):
        if 50 in all_results:
            def at50(a, b):
                x, y = med(50, a), med(50, b)
                return x / y if x and y else None
            judge(f"portal(on) ≤ 0.35 × Ansible at N=50, {how}",
                  at50("portal_on" + suffix, "ansible"), 0.35)
            judge(f"portal(on) ≤ 2 × bare paramiko at N=50, {how}",
                  at50("portal_on" + suffix, "paramiko"), 2)
            judge(f"portal(off) ≤ 1.3 × bare paramiko at N=50, {how}",
                  at50("portal_off" + suffix, "paramiko"), 1.3)
            for key in ("resync", "scan"):
                judge(f"{key} ≤ 1.2 × bare paramiko (reading) at N=50, {how}",
                      at50(key + suffix, "paramiko_read"), 1.2)
        if 50 in all_results and 100 in all_results:
            for key in ("portal_on", "portal_off"):
                x, y = med(100, key + suffix), med(50, key + suffix)
                judge(f"{key} t(100)/t(50) ≤ 2.2, {how}", x / y if x and y else None, 2.2)
    changes = {n: {k: [r.get("changes") for r in all_results[n].get(k, [])]
                   for k in ("resync", "scan", "resync_new", "scan_new")} for n in ns}
    goals.append(f"kernel changes in no-op resync / scan (from JobHost.result): {changes}")
    text = common.table(headers, rows) + "\n\nRatios (medians, same run):\n\n" + ratios
    return text, goals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4, help="worker concurrency")
    parser.add_argument("--pool", default="threads", help="worker pool (threads, prefork)")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args(argv)
    skip_ansible = args.no_ansible or not Ansible.available()
    if skip_ansible and not args.no_ansible:
        print(f"ansible-core not found in {ANSIBLE_VENV}: see bench/README.md; "
              "running without it", flush=True)
    common.setup_django("netportal_bench")
    header = common.machine()
    if not skip_ansible:
        header += f"; {Ansible.version()}"
    print(header, flush=True)
    workdir = tempfile.mkdtemp(prefix="netportal-bench-")
    all_results = {}
    try:
        with common.Worker(pool=args.pool, concurrency=args.concurrency) as worker:
            for n in args.hosts:
                all_results[n] = bench_n(n, args.reps, worker, workdir, skip_ansible)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        common.drop_database("netportal_bench")
    text, goals = summarize(all_results)
    print()
    print(text)
    print()
    print("\n".join(goals))
    if not args.no_write:
        command = "bench/fleet.py " + " ".join(sys.argv[1:])
        common.write_section("fleet", (
            f"## Fleet apply, no-op resync and drift scan (`{command.strip()}`)\n\n"
            f"Measured {header}. Worker: `celery -A portal.celery worker -P {args.pool} "
            f"-c {args.concurrency}` subprocess, PostgreSQL, Redis. Medians of "
            f"{args.reps} repetition(s); wall seconds from the call to every host "
            "committed (portal) or of the whole process (peers, Python start included); "
            "CPU = client side (worker process, or the peer's process tree); machine CPU = "
            "every process on the machine (the lab hosts' sshd, agent and `ip` included). "
            "Connections kept: the worker reuses the SSH connections the previous job left "
            "open (NETPORTAL_SSH_KEEP); new: it was told to close them first.\n\n"
            + text + "\n\nGoals:\n\n" + "\n".join(f"- {g}" for g in goals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
