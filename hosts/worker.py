"""Running a job on its hosts: a fan-out of SSH sessions, one thread per host.

Threads do the SSH work only and never touch the database; they report through a queue to
the task's own thread, which writes every step as it happens (entry status, log lines,
reported state). So a job over a hundred hosts needs one database connection, and the
threads are bound by the network and the hosts, not by the connection pool.

Per host (DESIGN.md "The agent"): fence (one active apply per host, in the database), check
the host key, connect (retrying with backoff only before anything was applied), apply the
compiled desired state; with the connectivity check the agent answers ``pending`` with a
rollback timer armed, and the portal confirms over a fresh connection. A lost channel means
"go to confirm", never "apply again". Then report, and store what the host reported.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from hosts import services, ssh, state
from hosts.choices import (
    JOB_FINAL_STATUSES,
    JOB_HOST_FINAL_STATUSES,
    HostKeyState,
    HostStatus,
    JobHostStatus,
    JobKind,
    JobStatus,
    LogLevel,
)
from hosts.models import Host, HostNic, Job, JobHost, JobLog, NetworkAttachment
from networks import constants as c
from networks.choices import BootProtocol
from portal import crypto
from portal.errors import RuleViolationError

log = logging.getLogger(__name__)

CONNECT_TRIES = 3
CONFIRM_MARGIN = 5  # seconds past the rollback deadline before the portal asks again
FENCE_WAIT = 600  # seconds an entry waits for another job's apply on the same host
APPLY_READ_TIMEOUT = 60  # seconds an apply may take on the host (300 networks take ~2 s)


class StepFailed(Exception):
    """A host's part of the job ended; ``status`` is the entry's final status."""

    def __init__(self, message: str, status: str = JobHostStatus.FAILED, *,
                 unreachable: bool = False):
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


@dataclass
class HostRun:
    """One host's part of a job, as its thread sees it (no database access)."""

    entry_id: int | None
    host: Host
    events: queue.Queue
    options: dict = field(default_factory=dict)

    def emit(self, kind: str, **data) -> None:
        self.events.put((self, kind, data, None))

    def ask(self, kind: str, **data):
        """Ask the task's thread for something that needs the database; wait for it."""
        reply: dict = {}
        done = threading.Event()
        self.events.put((self, kind, data, (reply, done)))
        done.wait()
        if "error" in reply:
            raise StepFailed(reply["error"])
        return reply.get("value")

    def log(self, message: str, level: str = LogLevel.INFO) -> None:
        self.emit("log", message=message, level=level)


# --- Host threads (SSH only) ------------------------------------------------------------


def _connect(run: HostRun, pkey, password=None) -> ssh.Connection:
    """Connect with retries and backoff; only for failures before anything was applied."""
    delay = 0.5
    for attempt in range(1, CONNECT_TRIES + 1):
        try:
            return ssh.connect(run.host, pkey, password=password)
        except ssh.SshError as exc:
            if exc.code == "host_key_changed":
                run.emit("host_key_changed")
            if not exc.retryable or attempt == CONNECT_TRIES:
                raise StepFailed(str(exc), unreachable=exc.retryable) from None
            run.log(f"{exc} (attempt {attempt} of {CONNECT_TRIES}; retrying in {delay:g} s)",
                    LogLevel.WARNING)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _check_key(run: HostRun) -> None:
    """Pin the host key on first contact; refuse a changed one; stop while pending."""
    try:
        key = ssh.scan_host_key(run.host)
        updates = ssh.evaluate_host_key(run.host, key)
    except ssh.SshError as exc:
        if exc.code == "host_key_changed":
            run.emit("host_key_changed")
        raise StepFailed(str(exc), unreachable=exc.retryable) from None
    if updates:
        run.emit("host_key", **updates)
        for name, value in updates.items():
            setattr(run.host, name, value)
    if run.host.host_key_state == HostKeyState.PENDING:
        raise StepFailed(
            f"The host key of {run.host.name} ({run.host.host_key_fingerprint}) waits for an "
            "operator's approval; nothing runs on the host until then.")


def _apply(run: HostRun, conn: ssh.Connection, pkey, document: dict) -> dict:
    """Apply ``document``; confirm over a fresh connection when the agent waits for it.

    Returns the agent's final answer; raises StepFailed with the entry's status otherwise.
    """
    timeout = document.get("rollback_timeout", c.CONNECTIVITY_TIMEOUT_DEFAULT)
    started = time.monotonic()
    # A change that cuts this connection leaves the answer undelivered: wait no longer than
    # the host's own rollback timer before going to confirm.
    read_timeout = min(APPLY_READ_TIMEOUT, timeout) if document.get("check_connectivity") \
        else APPLY_READ_TIMEOUT
    try:
        answer = _apply_once(run, conn, document, read_timeout)
    except ssh.AgentError as exc:
        error = exc.answer.get("error") or {}
        status = JobHostStatus.ROLLED_BACK if error.get("rolled_back") else \
            JobHostStatus.FAILED
        raise StepFailed(f"The agent refused or failed: {exc.code}: {exc}", status) from None
    except ssh.SshError as exc:
        # The channel was lost during the apply: the agent may have applied and armed its
        # timer. Go to confirm, never apply again.
        run.log(f"{exc}; asking the host whether the change is pending", LogLevel.WARNING)
        answer = {"status": "pending", "transaction": document["transaction"],
                  "changes": None, "commands": []}
    run.emit("applied", answer=answer)
    if answer.get("status") in ("committed", "unchanged"):
        return answer
    run.emit("status", status=JobHostStatus.AWAITING_CONFIRMATION)
    run.log("Applied; confirming connectivity over a fresh connection")
    deadline = started + timeout
    try:
        with ssh.connect(run.host, pkey) as fresh:
            confirmed = fresh.agent("confirm", {"transaction": document["transaction"]})
            # The state after the change: the apply's answer has it (the confirmation
            # changes nothing on the host), else it is read over this connection.
            report = answer.get("report") or _read_report(fresh)
        return {**answer, "status": confirmed.get("status", "committed"), "report": report}
    except (ssh.SshError, ssh.AgentError) as exc:
        run.log(f"Confirmation failed: {exc}; the host rolls back by itself", LogLevel.WARNING)
    # The host keeps its timer: wait for the deadline, then ask what happened.
    time.sleep(max(0.0, deadline - time.monotonic()) + CONFIRM_MARGIN)
    try:
        with ssh.connect(run.host, pkey) as again:
            status = again.agent("status")
    except (ssh.SshError, ssh.AgentError) as exc:
        raise StepFailed(f"The host did not answer after its rollback deadline: {exc}") from None
    if status.get("last_committed") == document["transaction"]:
        return {**answer, "status": "committed"}
    raise StepFailed("The change cut the portal's connection; the host rolled it back by "
                     "itself.", JobHostStatus.ROLLED_BACK)


def _apply_once(run: HostRun, conn: ssh.Connection, document: dict, read_timeout) -> dict:
    """Apply; when the host still holds a pending transaction of this same job entry (its
    worker was lost while awaiting confirmation), confirm that one first: this connection
    proves the host reachable. The re-apply then finds the state in place and changes
    nothing, so the host is never configured twice."""
    try:
        return conn.agent("apply", document, timeout=read_timeout, flags=("--report",))
    except ssh.AgentError as exc:
        pending = (exc.answer.get("error") or {}).get("transaction") or ""
        if exc.code != "pending_transaction" or not pending.startswith(
                run.options.get("transaction_prefix", "\0")):
            raise
        run.log(f"Confirming transaction {pending}, left pending by a lost worker",
                LogLevel.WARNING)
        conn.agent("confirm", {"transaction": pending})
        return conn.agent("apply", document, timeout=read_timeout, flags=("--report",))


def _read_report(conn: ssh.Connection) -> dict | None:
    """The host's report, or None when it could not be read (the caller reads it again)."""
    try:
        return conn.agent("report")
    except (ssh.SshError, ssh.AgentError):
        return None


def _report_after(run: HostRun, conn: ssh.Connection, pkey, answer: dict) -> None:
    """Store the host's state after an apply: the report read on the confirming connection,
    else one read over the apply's connection, else over a new one (the change may have
    moved the address the first connection used). One SSH connection per host without the
    connectivity check, two with it (apply, confirm), instead of two and three."""
    report = answer.get("report")
    if report is None:
        report = _read_report(conn)
    if report is not None:
        run.ask("report", report=report)
        return
    with _connect(run, pkey) as again:
        _report(run, again)


def _report(run: HostRun, conn: ssh.Connection) -> None:
    try:
        report = conn.agent("report")
    except (ssh.SshError, ssh.AgentError) as exc:
        raise StepFailed(f"Reading the host's state failed: {exc}") from None
    run.ask("report", report=report)


def run_apply(run: HostRun, pkey) -> None:
    """Push the host's desired state (setup networks, sync, a network change)."""
    _require_approved(run)
    # Compiled by the task's thread before this thread started (JobRunner._precompile), or
    # asked for now.
    document = run.options.get("document")
    if document is None:
        document = run.ask("compile")
        run.emit("plan", document=document)
    with _connect(run, pkey) as conn:
        answer = _apply(run, conn, pkey, document)
        _report_after(run, conn, pkey, answer)
    run.emit("committed", document=document, answer=answer)


def run_add(run: HostRun, pkey) -> None:
    """Add a host: pin its key, log in (installing the portal's key with a one-time
    password if given), read its NICs, and implement the management network as a bridge on
    the NIC that carries the host's address, without losing the connection."""
    _check_key(run)
    password = run.options.get("password")
    try:
        conn = ssh.connect(run.host, pkey)
    except ssh.SshError as exc:
        if exc.code != "auth_failed" or not password:
            raise StepFailed(str(exc), unreachable=exc.retryable) from None
        run.log("The portal's key is not installed; installing it with the one-time password")
        try:
            ssh.install_portal_key(run.host, run.options["public_key"], password)
        except ssh.SshError as install_error:
            raise StepFailed(str(install_error)) from None
        conn = _connect(run, pkey)
    run.emit("password_used")
    with conn:
        _report(run, conn)
        document = run.ask("compile", management=True)
        run.emit("plan", document=document)
        answer = _apply(run, conn, pkey, document)
        _report_after(run, conn, pkey, answer)
    run.emit("committed", document=document, answer=answer)


def run_preview(run: HostRun, pkey) -> None:
    """Ask the agent what a setup request would change (its dry run: the exact commands),
    against the host's real kernel state; nothing is applied or stored."""
    _require_approved(run)
    with _connect(run, pkey) as conn:
        document = run.ask("compile_preview")
        try:
            answer = conn.agent("apply", {**document, "dry_run": True})
        except ssh.AgentError as exc:
            raise StepFailed(f"The agent refused the previewed state: {exc.code}: {exc}"
                             ) from None
    run.emit("previewed", document=document, answer=answer)


def run_refresh(run: HostRun, pkey) -> None:
    """Read the host's state and store it (sync state, status)."""
    _require_approved(run)
    with _connect(run, pkey) as conn:
        _report(run, conn)
    run.emit("refreshed")


def _require_approved(run: HostRun) -> None:
    if run.host.host_key_state != HostKeyState.APPROVED:
        raise StepFailed(f"The host key of {run.host.name} is not approved "
                         f"({run.host.get_host_key_state_display()}).")


RUNNERS: dict[str, Callable] = {
    JobKind.ADD_HOST: run_add,
    JobKind.SETUP_NETWORKS: run_apply,
    JobKind.SYNC: run_apply,
    JobKind.NETWORK_CHANGE: run_apply,
    JobKind.REFRESH: run_refresh,
    JobKind.PREVIEW: run_preview,
}


# --- The task's thread (database only) --------------------------------------------------


class JobRunner:
    """Runs a job's entries in threads and writes what they report."""

    def __init__(self, job: Job, owner: str):
        self.job = job
        self.owner = owner
        self.events: queue.Queue = queue.Queue()
        self.done: set[int] = set()
        self.logs: list[JobLog] = []
        self.plans: dict[int, dict] = {}  # entry id -> the document written as its plan
        # Each cluster's networks as the rules see them, read once for the job's host
        # status checks (a job lasts seconds; the networks' own changes recheck the hosts).
        self.networks_cache: dict = {}
        self.pkey, self.key_pair = ssh.portal_key()
        self.renewed = time.monotonic()

    def _renew_lease(self) -> None:
        if time.monotonic() - self.renewed < settings.NETPORTAL_JOB_LEASE / 3:
            return
        Job.objects.filter(pk=self.job.pk, lease_owner=self.owner).update(
            lease_until=timezone.now() + timedelta(seconds=settings.NETPORTAL_JOB_LEASE))
        self.renewed = time.monotonic()

    def run(self) -> Job:
        job = self.job
        Job.objects.filter(pk=job.pk, started__isnull=True).update(started=timezone.now())
        Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
        entries = list(job.hosts.select_related("host__cluster").exclude(
            status__in=JOB_HOST_FINAL_STATUSES))
        runner = RUNNERS[job.kind]
        waiting = list(entries)
        started_at = time.monotonic()
        running: dict = {}
        workers = max(1, min(len(entries), settings.NETPORTAL_FANOUT))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
            while waiting or running:
                fenced = []
                for entry in list(waiting):
                    if self._fence(entry):
                        waiting.remove(entry)
                        fenced.append(entry)
                    elif time.monotonic() - started_at > FENCE_WAIT:
                        waiting.remove(entry)
                        self._finish(entry, JobHostStatus.FAILED,
                                     "Another job kept applying to this host; gave up waiting.")
                documents = self._precompile(fenced) if runner is run_apply else {}
                for entry in fenced:
                    run = HostRun(entry.pk, entry.host, self.events, self._options(entry))
                    if entry.pk in documents:
                        run.options["document"] = documents[entry.pk]
                    running[entry.pk] = (entry, pool.submit(self._guard, runner, run))
                self._drain(timeout=0.05 if waiting else 0.2)
                self._renew_lease()
                for pk, (_entry, future) in list(running.items()):
                    if future.done() or pk in self.done:
                        self._drain(timeout=0)
                        del running[pk]
        self._drain(timeout=0)
        job = services.finish_job(job)
        Job.objects.filter(pk=job.pk, lease_owner=self.owner).update(lease_owner="",
                                                                      lease_until=None)
        return job

    def _precompile(self, entries: list[JobHost]) -> dict[int, dict]:
        """The desired-state documents of hosts whose apply slot was just taken, compiled
        before their threads start. Compiling once the threads run costs each query a wait
        for the GIL that the SSH threads hold (measured at 50 hosts: 60 ms a document
        instead of 3); a host whose document fails here asks for it from its thread."""
        documents = {}
        for entry in entries:
            try:
                run = HostRun(entry.pk, entry.host, self.events)
                documents[entry.pk] = self.on_compile(run)
                # Its plan is written now too, while no SSH thread competes for the GIL
                # (measured at 50 hosts: 1.3 s of the task's thread once they run).
                self.on_plan(run, documents[entry.pk])
            except Exception:  # the thread asks again and reports the error
                log.exception("compiling the desired state of %s", entry.host.name)
        return documents

    def _options(self, entry: JobHost) -> dict:
        options = {"public_key": self.key_pair.public_key,
                   "transaction_prefix": self._transaction_prefix(entry.pk)}
        host = entry.host
        if self.job.kind == JobKind.ADD_HOST and host.install_password:
            options["password"] = crypto.decrypt(host.install_password)
        return options

    def _transaction_prefix(self, entry_id: int) -> str:
        """Transaction ids name their job entry, so a resumed job recognises its own."""
        return f"job{self.job.pk}-{entry_id}-"

    def _guard(self, runner, run: HostRun) -> None:
        """Run one host; turn every outcome into a final event (never an exception)."""
        try:
            runner(run, self.pkey)
        except StepFailed as exc:
            run.emit("failed", message=str(exc), status=exc.status,
                     unreachable=exc.unreachable)
        except Exception as exc:  # a bug must fail this host only, with its reason
            log.exception("host %s failed", run.host.name)
            run.emit("failed", message=f"Internal error: {exc}", status=JobHostStatus.FAILED,
                     unreachable=False)
        finally:
            run.emit("done")

    def _fence(self, entry: JobHost) -> bool:
        """Take the host's apply slot (a partial unique constraint) or wait for it."""
        try:
            with transaction.atomic():
                taken = JobHost.objects.filter(pk=entry.pk, status=JobHostStatus.PENDING
                                               ).update(status=JobHostStatus.RUNNING,
                                                        started=timezone.now())
        except IntegrityError:
            return False
        return bool(taken)

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                run, kind, data, reply = self.events.get(block=False)
            except queue.Empty:
                self._flush_logs()
                try:
                    run, kind, data, reply = self.events.get(timeout=max(0.0, remaining))
                except queue.Empty:
                    return
            try:
                value = getattr(self, f"on_{kind}")(run, **data)
                if reply is not None:
                    reply[0]["value"] = value
            except StepFailed as exc:
                if reply is None:
                    raise
                reply[0]["error"] = str(exc)
            except Exception as exc:
                log.exception("handling %s of %s", kind, run.host.name)
                if reply is not None:
                    reply[0]["error"] = f"Internal error: {exc}"
            finally:
                if reply is not None:
                    reply[1].set()
            if kind == "done":
                self._flush_logs()
                return  # the loop looks at the finished host now

    def on_done(self, run: HostRun) -> None:
        """A host's thread has nothing more to say (its last event came before this)."""
        self.done.add(run.entry_id)

    # Event handlers: each writes one step.

    def _entry(self, run: HostRun) -> JobHost:
        return JobHost.objects.select_related("host").get(pk=run.entry_id)

    def on_log(self, run: HostRun, message: str, level: str = LogLevel.INFO) -> None:
        # Kept and written together when the task's thread has no event waiting (see
        # _drain): one insert for many lines.
        self.logs.append(JobLog(job=self.job, host=run.host, level=level, message=message))

    def _flush_logs(self) -> None:
        if self.logs:
            logs, self.logs = self.logs, []
            JobLog.objects.bulk_create(logs)

    def on_status(self, run: HostRun, status: str) -> None:
        JobHost.objects.filter(pk=run.entry_id).update(status=status)

    def on_host_key(self, run: HostRun, **fields) -> None:
        Host.objects.filter(pk=run.host.pk).update(**fields)
        self.on_log(run, f"Host key {fields['host_key_fingerprint']} recorded "
                         f"({HostKeyState(fields['host_key_state']).label.lower()})",
                    LogLevel.INFO)

    def on_host_key_changed(self, run: HostRun) -> None:
        Host.objects.filter(pk=run.host.pk).update(host_key_state=HostKeyState.CHANGED)

    def on_password_used(self, run: HostRun) -> None:
        Host.objects.filter(pk=run.host.pk).update(install_password="")

    def on_plan(self, run: HostRun, document: dict) -> None:
        JobHost.objects.filter(pk=run.entry_id).update(plan={"document": document})
        self.plans[run.entry_id] = document

    def on_applied(self, run: HostRun, answer: dict) -> None:
        # One UPDATE: the plan's document is the one this runner wrote (on_plan).
        document = self.plans.get(run.entry_id)
        plan = {"commands": answer.get("commands") or [], "changes": answer.get("changes")}
        transaction_id = answer.get("transaction") or ""
        if document is not None:
            JobHost.objects.filter(pk=run.entry_id).update(
                plan={"document": document, **plan}, transaction=transaction_id)
        else:
            entry = self._entry(run)
            entry.plan = {**entry.plan, **plan}
            entry.transaction = transaction_id
            entry.save(update_fields=["plan", "transaction"])
        changes = answer.get("changes")
        if answer.get("status") == "unchanged":
            self.on_log(run, "The host already holds this state: no change made")
        else:
            self.on_log(run, f"Applied {changes if changes is not None else 'some'} changes "
                             f"({answer.get('status')})")

    def on_compile(self, run: HostRun, management: bool = False) -> dict:
        host = Host.objects.select_related("cluster").get(pk=run.host.pk)
        if management:
            ensure_management_attachment(host)
        entry = self._entry(run)
        options = self.job.request or {}
        return state.compile_state(
            host, transaction=f"{self._transaction_prefix(entry.pk)}{uuid.uuid4().hex[:8]}",
            check_connectivity=options.get("check_connectivity", True),
            rollback_timeout=options.get("connectivity_timeout")
            or settings.NETPORTAL_CONNECTIVITY_TIMEOUT)

    def on_compile_preview(self, run: HostRun) -> dict:
        host = Host.objects.select_related("cluster").get(pk=run.host.pk)
        request, _options = services.setup_request_from_data(self.job.request or {})
        try:
            return services.compile_would_be_state(host, request, transaction="preview",
                                                   check_connectivity=False)
        except RuleViolationError as exc:
            raise StepFailed(f"The request no longer fits the host: {exc}") from None

    def on_previewed(self, run: HostRun, document: dict, answer: dict) -> None:
        entry = self._entry(run)
        entry.plan = {"document": document, "commands": answer.get("commands") or [],
                      "changes": answer.get("changes", 0)}
        entry.save(update_fields=["plan"])
        self._finish(entry, JobHostStatus.COMMITTED,
                     result={"status": answer.get("status"), "changes": answer.get("changes")})
        self.on_log(run, f"Preview: {answer.get('changes', 0)} changes")

    def on_report(self, run: HostRun, report: dict) -> None:
        store_report(Host.objects.select_related("cluster").get(pk=run.host.pk), report,
                     self.networks_cache)

    def on_committed(self, run: HostRun, document: dict, answer: dict) -> None:
        Host.objects.filter(pk=run.host.pk).update(applied_state=document)
        self._finish(self._entry(run), JobHostStatus.COMMITTED,
                     result={"status": answer.get("status"), "changes": answer.get("changes")})
        self.on_log(run, "Committed")

    def on_refreshed(self, run: HostRun) -> None:
        self._finish(self._entry(run), JobHostStatus.COMMITTED, result={"status": "refreshed"})

    def on_failed(self, run: HostRun, message: str, status: str, unreachable: bool) -> None:
        self._finish(self._entry(run), status, message)
        self.on_log(run, message, LogLevel.ERROR)
        host = Host.objects.get(pk=run.host.pk)
        if unreachable:
            host.status, host.status_reason = HostStatus.NON_RESPONSIVE, message
            host.save(update_fields=["status", "status_reason", "updated"])
        elif self.job.kind == JobKind.ADD_HOST and host.status == HostStatus.INSTALLING:
            host.status_reason = message
            host.save(update_fields=["status_reason", "updated"])

    def _finish(self, entry: JobHost, status: str, error: str = "", result=None) -> None:
        entry.status, entry.error, entry.finished = status, error, timezone.now()
        entry.result = result or entry.result
        entry.save(update_fields=["status", "error", "finished", "result"])


# --- Writes that follow a host's report -------------------------------------------------

NIC_TYPES = ("ethernet", "veth")


def store_report(host: Host, report: dict, networks_cache: dict | None = None) -> None:
    """Store what the host reported: its NICs, each attachment's sync state, its status."""
    links = {i["name"]: i for i in report.get("interfaces", [])}
    managed = set(report.get("managed") or [])
    nics = {n.name: n for n in host.nics.all()}
    for name, link in links.items():
        if link.get("type") not in NIC_TYPES or name in managed:
            continue
        nic = nics.pop(name, None) or HostNic(host=host, name=name)
        values = {"mac": link.get("mac") or "", "mtu": link.get("mtu") or c.MTU_DEFAULT,
                  "link_up": link.get("state") == "up", "speed": link.get("speed")}
        if nic.pk is None or any(getattr(nic, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(nic, key, value)
            nic.save()
    for gone in nics.values():  # no longer reported: keep it only while something uses it
        if not gone.attachments.exists() and gone.bond_id is None:
            gone.delete()
    default_network = state.default_route_network(host)
    for attachment in host.attachments.select_related("network", "nic", "bond"):
        differences = state.attachment_differences(attachment, report, default_network)
        top = links.get(state.placement(attachment).top) or {}
        reported = {
            "interface": top.get("name"), "mtu": top.get("mtu"),
            "bridged": top.get("type") == "bridge" if top else None,
            "ipv4": top.get("ipv4") or [], "ipv6": top.get("ipv6") or [],
        }
        if (attachment.reported, attachment.in_sync, attachment.out_of_sync) == (
                reported, not differences, differences):
            continue  # unchanged: no write (a scan of a steady fleet writes little)
        attachment.reported = reported
        attachment.in_sync = not differences
        attachment.out_of_sync = differences
        attachment.save(update_fields=["reported", "in_sync", "out_of_sync", "updated"])
    host.reported = report
    host.last_refresh = timezone.now()
    host.save(update_fields=["reported", "last_refresh", "updated"])
    services.refresh_host_status(host, reachable=True, networks_cache=networks_cache)


def ensure_management_attachment(host: Host) -> None:
    """Give a new host its management network: a bridge on the NIC that carries the host's
    address, with that address (so the connection survives the move)."""
    from networks.services import management_network

    network = management_network(host.cluster.datacenter)
    if host.attachments.filter(network=network).exists():
        return
    links = {link["name"]: link for link in (host.reported or {}).get("interfaces", [])}
    nics = {nic.name: nic for nic in host.nics.all()}
    for link in links.values():
        for address in link.get("ipv4") or []:
            ip, _, prefix = address.partition("/")
            if ip != host.address:
                continue
            # On a host configured before (a re-install), the address sits on the bridge
            # whose port is the NIC.
            name = link["name"]
            if name not in nics and link.get("type") == "bridge":
                name = next((p for p in link.get("ports") or [] if p in nics), name)
            nic = nics.get(name)
            if nic is None:
                continue
            dhcp = bool(link.get("dhcp"))
            gateway = ((host.reported.get("routes") or {}).get("default") or {}).get(
                "gateway") or ""
            NetworkAttachment.objects.create(
                host=host, network=network, nic=nic,
                ipv4_boot_protocol=BootProtocol.DHCP if dhcp else BootProtocol.STATIC,
                ipv4_address="" if dhcp else ip, ipv4_netmask="" if dhcp else prefix,
                ipv4_gateway="" if dhcp else gateway)
            Host.objects.filter(pk=host.pk).update(management_nic=nic.name)
            return
    raise StepFailed(f"No NIC of {host.name} carries its address {host.address}; cannot "
                     "place the management network.")


def run_job(job_id: int) -> Job | None:
    """Run (or resume, after its runner was lost) a job.

    A job is run by one runner at a time: the runner takes a lease on the job row and
    renews it while it works. A duplicate delivery finds the lease held and returns; a lost
    runner's lease lapses, and the next runner resumes the entries that did not finish.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id).exclude(status__in=JOB_FINAL_STATUSES).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_owner=owner, lease_until=now + timedelta(seconds=settings.NETPORTAL_JOB_LEASE))
    if not claimed:
        return Job.objects.filter(pk=job_id).first()
    job = Job.objects.get(pk=job_id)
    # Entries a lost runner left running go back to pending: applying the same desired
    # state again changes nothing on the host (the agent is idempotent), and a transaction
    # it left pending there is confirmed first (see _apply_once).
    job.hosts.filter(status__in=[JobHostStatus.RUNNING, JobHostStatus.AWAITING_CONFIRMATION]
                     ).update(status=JobHostStatus.PENDING)
    return JobRunner(job, owner).run()


def requeue_jobs() -> list[int]:
    """Send again the jobs that never reached the broker, and those whose runner was lost
    (lease lapsed). Run by Celery beat and at each worker start."""
    now = timezone.now()
    stale = Job.objects.exclude(status__in=JOB_FINAL_STATUSES).filter(
        Q(queued=False, created__lt=now - timedelta(seconds=5))
        | Q(lease_until__lt=now))
    sent = []
    for job_id in stale.values_list("pk", flat=True):
        if services.enqueue_job(job_id):
            sent.append(job_id)
    return sent
