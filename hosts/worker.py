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
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
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
from portal import audit, crypto
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


def _connect(run: HostRun, pkey) -> ssh.Connection:
    """Connect (or reuse the connection an earlier job left open: `ssh.POOL`) with retries
    and backoff; only for failures before anything was applied."""
    delay = 0.5
    for attempt in range(1, CONNECT_TRIES + 1):
        try:
            return ssh.connect_kept(run.host, pkey)
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
    """Apply ``document``; with the connectivity check, confirm it on the same channel, or
    over a fresh connection when that channel was lost.

    Returns the agent's final answer; raises StepFailed with the entry's status otherwise.

    Confirming on the apply's own channel (the agent waits for it: ``--await-confirm``):
    its ``pending`` answer reached the portal after the change, and the confirmation the
    portal sends back reaches the host after it, so the round trip over the host's address
    is proven, as VDSM accepts any call from the engine on its existing connection. It
    saves a second SSH connection and a second start of the agent per host. A channel that
    does not survive the change falls back to a fresh connection, then to the host's timer.
    """
    timeout = document.get("rollback_timeout", c.CONNECTIVITY_TIMEOUT_DEFAULT)
    started = time.monotonic()
    check = bool(document.get("check_connectivity"))
    # A change that cuts this connection leaves the answer undelivered: wait no longer than
    # the host's own rollback timer before going to confirm.
    read_timeout = min(APPLY_READ_TIMEOUT, timeout) if check else APPLY_READ_TIMEOUT
    seen: dict = {}

    def confirm_inline(answer: dict) -> dict | None:
        seen["answer"] = answer
        if answer.get("status") != "pending":
            return None
        run.emit("applied", answer=answer)
        run.emit("status", status=JobHostStatus.AWAITING_CONFIRMATION)
        run.log("Applied; confirming connectivity on the same connection")
        return {"transaction": document["transaction"]}

    try:
        answer = _apply_once(run, conn, document, read_timeout,
                             reply=confirm_inline if check else None)
    except ssh.AgentError as exc:
        if "answer" in seen:  # the confirmation was refused: the host rolled back
            raise StepFailed(f"The host refused the confirmation: {exc.code}: {exc}",
                             JobHostStatus.ROLLED_BACK) from None
        error = exc.answer.get("error") or {}
        status = JobHostStatus.ROLLED_BACK if error.get("rolled_back") else \
            JobHostStatus.FAILED
        raise StepFailed(f"The agent refused or failed: {exc.code}: {exc}", status) from None
    except ssh.SshError as exc:
        # The channel was lost during the apply (or before the confirmation's answer): the
        # agent may have applied and armed its timer. Go to confirm, never apply again.
        answer = seen.get("answer") or {"status": "pending", "transaction":
                                        document["transaction"], "changes": None,
                                        "commands": []}
        run.log(f"{exc}; asking the host whether the change is pending", LogLevel.WARNING)
        return _confirm_fresh(run, pkey, document, answer, started + timeout,
                              announced="answer" in seen)
    first = seen.get("answer") or answer
    if first.get("status") == "pending":
        return {**first, "status": answer.get("status", "committed")}
    run.emit("applied", answer=answer)
    return answer


def _confirm_fresh(run: HostRun, pkey, document: dict, answer: dict, deadline: float,
                   announced: bool) -> dict:
    """Confirm a pending change over a new connection; when that fails too, wait for the
    host's rollback deadline and ask what happened."""
    if not announced:
        run.emit("applied", answer=answer)
        run.emit("status", status=JobHostStatus.AWAITING_CONFIRMATION)
    run.log("Confirming connectivity over a fresh connection")
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
    if status.get("committed") == document["transaction"]:
        return {**answer, "status": "committed"}
    raise StepFailed("The change cut the portal's connection; the host rolled it back by "
                     "itself.", JobHostStatus.ROLLED_BACK)


def _apply_once(run: HostRun, conn: ssh.Connection, document: dict, read_timeout,
                reply=None) -> dict:
    """Apply; when the host still holds a pending transaction of this same job entry (its
    worker was lost while awaiting confirmation), confirm that one first: this connection
    proves the host reachable. The re-apply then finds the state in place and changes
    nothing, so the host is never configured twice."""
    flags = ("--report", "--await-confirm") if reply else ("--report",)
    try:
        return conn.agent("apply", document, timeout=read_timeout, flags=flags, reply=reply)
    except ssh.AgentError as exc:
        pending = (exc.answer.get("error") or {}).get("transaction") or ""
        if exc.code != "pending_transaction" or not pending.startswith(
                run.options.get("transaction_prefix", "\0")):
            raise
        run.log(f"Confirming transaction {pending}, left pending by a lost worker",
                LogLevel.WARNING)
        conn.agent("confirm", {"transaction": pending})
        return conn.agent("apply", document, timeout=read_timeout, flags=flags, reply=reply)


def _read_report(conn: ssh.Connection) -> dict | None:
    """The host's report, or None when it could not be read (the caller reads it again)."""
    try:
        return conn.report()
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
        report = conn.report()
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
        answer = _unchanged(run, conn, document) if run.options.get("read_first") else None
        if answer is None:
            answer = _apply(run, conn, pkey, document)
        _report_after(run, conn, pkey, answer)
    run.emit("committed", document=document, answer=answer)


def _unchanged(run: HostRun, conn: ssh.Connection, document: dict) -> dict | None:
    """For a resync, which mostly finds hosts as the portal wants them: read the host first
    (no Python started there) and judge with the agent's own code whether the apply would
    change anything. The agent's answer when it would not (its report included), else None:
    the agent applies, and judges again under its lock."""
    try:
        read = conn.read_state()
    except (ssh.SshError, ssh.AgentError) as exc:
        run.log(f"{exc}; the agent reads the host itself", LogLevel.WARNING)
        return None
    module = ssh.agent_module()
    if not module.unchanged_by(document, read):
        return None
    answer = {"ok": True, "status": "unchanged", "changes": 0, "commands": [],
              "transaction": (read["committed"] or {}).get("transaction") or "",
              "report": module.report_of(read["kernel"], read["managed"])}
    run.emit("applied", answer=answer)
    return answer


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
        # What the handled events changed, written together by _flush.
        self.reports: list[tuple] = []
        self.entry_updates: dict[int, dict] = {}
        self.host_updates: dict[int, dict] = {}
        self.finished: set[int] = set()
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
        # The hosts' threads need their addresses and keys, not their (large) states.
        entries = list(job.hosts.select_related("host__cluster").defer(
            "host__reported", "host__applied_state", "plan", "result").exclude(
            status__in=JOB_HOST_FINAL_STATUSES))
        runner = RUNNERS[job.kind]
        waiting = list(entries)
        started_at = time.monotonic()
        running: dict = {}
        workers = max(1, min(len(entries), settings.NETPORTAL_FANOUT))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
            while waiting or running:
                fenced = self._fence_all(waiting)
                waiting = [entry for entry in waiting if entry not in fenced]
                for entry in list(waiting):
                    if self._fence(entry):
                        waiting.remove(entry)
                        fenced.append(entry)
                    elif time.monotonic() - started_at > FENCE_WAIT:
                        waiting.remove(entry)
                        self._finish(entry.pk, JobHostStatus.FAILED,
                                     "Another job kept applying to this host; gave up waiting.")
                documents = self._precompile(fenced) if runner is run_apply else {}
                for entry in fenced:
                    run = HostRun(entry.pk, entry.host, self.events, self._options(entry))
                    if entry.pk in documents:
                        run.options["document"] = documents[entry.pk]
                    running[entry.pk] = (entry, pool.submit(self._guard, runner, run))
                self._drain(timeout=0.05 if waiting else 0.2)
                self._renew_lease()
                # A host is finished once its thread said so; whatever it said last is in
                # the queue before that (a thread that ended otherwise: drained below).
                for pk, (_entry, future) in list(running.items()):
                    if pk in self.done or future.done():
                        del running[pk]
        self._drain(timeout=0)
        self._flush()
        job = services.finish_job(job)
        Job.objects.filter(pk=job.pk, lease_owner=self.owner).update(lease_owner="",
                                                                      lease_until=None)
        return job

    def _precompile(self, entries: list[JobHost]) -> dict[int, dict]:
        """The desired-state documents of hosts whose apply slot was just taken, compiled
        together before their threads start (`state.compile_states`: a few queries for all).
        Compiling once the threads run costs each query a wait for the GIL that the SSH
        threads hold (measured at 50 hosts: 60 ms a document instead of 3). When that
        fails, each host's thread asks for its own document, and reports its error."""
        if not entries:
            return {}
        options = self.job.request or {}
        try:
            hosts = Host.objects.select_related("cluster").defer("reported").filter(
                pk__in=[entry.host_id for entry in entries])
            documents = state.compile_states(
                hosts, {entry.host_id: self._new_transaction(entry.pk) for entry in entries},
                check_connectivity=options.get("check_connectivity", True),
                rollback_timeout=options.get("connectivity_timeout")
                or settings.NETPORTAL_CONNECTIVITY_TIMEOUT)
        except Exception:
            log.exception("compiling the desired state of %d hosts", len(entries))
            return {}
        compiled = {}
        for entry in entries:
            compiled[entry.pk] = documents[entry.host_id]
            self.on_plan(HostRun(entry.pk, entry.host, self.events), compiled[entry.pk])
        return compiled

    def _new_transaction(self, entry_id: int) -> str:
        return f"{self._transaction_prefix(entry_id)}{uuid.uuid4().hex[:8]}"

    def _options(self, entry: JobHost) -> dict:
        options = {"public_key": self.key_pair.public_key,
                   "transaction_prefix": self._transaction_prefix(entry.pk),
                   "read_first": self.job.kind == JobKind.SYNC}
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

    def _fence_all(self, entries: list[JobHost]) -> list[JobHost]:
        """Take every entry's apply slot in one UPDATE, as a job starts; when another job
        holds one of the hosts (the constraint refuses the whole statement), none is taken
        here and the entries are fenced one by one."""
        if len(entries) < 2:
            return []
        try:
            with transaction.atomic():
                taken = JobHost.objects.filter(
                    pk__in=[entry.pk for entry in entries], status=JobHostStatus.PENDING,
                ).update(status=JobHostStatus.RUNNING, started=timezone.now())
                if taken != len(entries):
                    raise IntegrityError("some entries were not pending")
        except IntegrityError:
            return []
        return list(entries)

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
        """Handle what the hosts' threads said: wait up to ``timeout`` for a first event,
        take every other one already waiting, handle them, write what they changed together
        (`_flush`), and only then answer the threads that asked for something.

        Writing a batch of hosts at once matters at fan-out: fifty hosts finishing within a
        second cost fifty times fifteen small queries one host at a time, each waiting for
        the GIL that the SSH threads hold; in batches they cost a few bulk statements."""
        try:
            batch = [self.events.get(timeout=timeout) if timeout > 0
                     else self.events.get(block=False)]
        except queue.Empty:
            return
        while True:
            try:
                batch.append(self.events.get(block=False))
            except queue.Empty:
                break
        replies = []
        for run, kind, data, reply in batch:
            if kind == "report":  # stored for the whole batch at once, in _flush
                self.reports.append((run, data["report"], reply))
                continue
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
            if reply is not None:
                replies.append(reply)
        replies += [reply for _run, _report, reply in self.reports]
        try:
            self._flush()
        finally:
            for reply in replies:
                reply[1].set()

    def _flush(self) -> None:
        """Write what the handled events changed: every report, then the hosts' and the
        entries' new values, the audit records of finished entries and the log lines, each
        kind in one statement (or a few), all in one transaction (one commit, not one per
        statement). The reports are stored in a savepoint of their own: when that fails,
        their hosts fail with the reason and the rest is still written."""
        reports, self.reports = self.reports, []
        host_updates, self.host_updates = self.host_updates, {}
        entry_updates, self.entry_updates = self.entry_updates, {}
        finished, self.finished = self.finished, set()
        logs, self.logs = self.logs, []
        with transaction.atomic():
            if reports:
                try:
                    with transaction.atomic():
                        store_reports({run.host.pk: report for run, report, _reply in reports},
                                      self.networks_cache)
                except Exception as exc:  # the hosts' threads fail with the reason
                    log.exception("storing the reports of %d hosts", len(reports))
                    for _run, _report, reply in reports:
                        reply[0]["error"] = f"Storing the host's state failed: {exc}"
            _bulk_update(Host, host_updates)
            _bulk_update(JobHost, entry_updates)
            if finished:
                audit.record_job_outcomes(JobHost.objects.filter(pk__in=finished)
                                          .select_related("host"))
            if logs:
                JobLog.objects.bulk_create(logs)

    def on_done(self, run: HostRun) -> None:
        """A host's thread has nothing more to say (its last event came before this)."""
        self.done.add(run.entry_id)

    # Event handlers: each records one step; `_flush` writes them.

    def _update_entry(self, entry_id: int, **fields) -> None:
        self.entry_updates.setdefault(entry_id, {}).update(fields)

    def on_log(self, run: HostRun, message: str, level: str = LogLevel.INFO) -> None:
        self.logs.append(JobLog(job=self.job, host=run.host, level=level, message=message))

    def on_status(self, run: HostRun, status: str) -> None:
        self._update_entry(run.entry_id, status=status)

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
        self._update_entry(run.entry_id, plan={"document": document})
        self.plans[run.entry_id] = document

    def on_applied(self, run: HostRun, answer: dict) -> None:
        # The plan's document is the one this runner recorded (on_plan), before the apply.
        plan = {"document": self.plans.get(run.entry_id),
                "commands": answer.get("commands") or [], "changes": answer.get("changes")}
        self._update_entry(run.entry_id, plan=plan, transaction=answer.get("transaction") or "")
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
        options = self.job.request or {}
        return state.compile_state(
            host, transaction=self._new_transaction(run.entry_id),
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
        self._update_entry(run.entry_id, plan={
            "document": document, "commands": answer.get("commands") or [],
            "changes": answer.get("changes", 0)})
        self._finish(run.entry_id, JobHostStatus.COMMITTED,
                     result={"status": answer.get("status"), "changes": answer.get("changes")})
        self.on_log(run, f"Preview: {answer.get('changes', 0)} changes")

    def on_committed(self, run: HostRun, document: dict, answer: dict) -> None:
        self.host_updates.setdefault(run.host.pk, {})["applied_state"] = document
        self._finish(run.entry_id, JobHostStatus.COMMITTED,
                     result={"status": answer.get("status"), "changes": answer.get("changes")})
        self.on_log(run, "Committed")

    def on_refreshed(self, run: HostRun) -> None:
        self._finish(run.entry_id, JobHostStatus.COMMITTED, result={"status": "refreshed"})

    def on_failed(self, run: HostRun, message: str, status: str, unreachable: bool) -> None:
        self._finish(run.entry_id, status, message)
        self.on_log(run, message, LogLevel.ERROR)
        host = Host.objects.get(pk=run.host.pk)
        if unreachable:
            host.status, host.status_reason = HostStatus.NON_RESPONSIVE, message
            host.save(update_fields=["status", "status_reason", "updated"])
        elif self.job.kind == JobKind.ADD_HOST and host.status == HostStatus.INSTALLING:
            host.status_reason = message
            host.save(update_fields=["status_reason", "updated"])

    def _finish(self, entry_id: int, status: str, error: str = "", result=None) -> None:
        """The entry's outcome, written (and audited) by the next `_flush`."""
        fields = {"status": status, "error": error, "finished": timezone.now()}
        if result is not None:
            fields["result"] = result
        self._update_entry(entry_id, **fields)
        self.finished.add(entry_id)


def _bulk_update(model, updates: dict[int, dict]) -> None:
    """Rows' new values (pk -> {field: value}): one parametrized UPDATE per set of fields,
    sent for all rows at once (``executemany``: psycopg pipelines them). For values the
    audit log leaves alone (reported state, a job entry's progress; its outcome is recorded
    by `audit.record_job_outcomes`): like Django's ``bulk_update``, it sends no signals,
    without building a ``CASE WHEN`` expression per row and field (measured: 0.3 s of the
    task's thread for one job over 50 hosts)."""
    by_fields: dict[tuple, list] = defaultdict(list)
    for pk, fields in updates.items():
        by_fields[tuple(sorted(fields))].append((pk, fields))
    meta, quote = model._meta, connection.ops.quote_name
    for names, rows in by_fields.items():
        columns = [meta.get_field(name) for name in names]
        sql = (f"UPDATE {quote(meta.db_table)} SET "
               + ", ".join(f"{quote(column.column)} = %s" for column in columns)
               + f" WHERE {quote(meta.pk.column)} = %s")
        params = [[column.get_db_prep_save(fields[column.name], connection)
                   for column in columns] + [pk] for pk, fields in rows]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def _rows(objects, names: list[str]) -> dict[int, dict]:
    """Model instances as `_bulk_update`'s updates of the fields ``names``."""
    return {obj.pk: {name: getattr(obj, name) for name in names} for obj in objects}


# --- Writes that follow a host's report -------------------------------------------------

NIC_TYPES = ("ethernet", "veth")


def store_reports(reports: dict[int, dict], networks_cache: dict | None = None) -> None:
    """Store what hosts reported (host id -> report): their NICs, each attachment's sync
    state, their status. The same dozen statements for one host or fifty."""
    # The reported states stored before are replaced, not read.
    hosts = Host.objects.select_related("cluster").defer("reported", "applied_state").in_bulk(
        list(reports))
    # Read once, for the NICs' update and the hosts' status both (with the NICs as written).
    rows = services.load_host_rows(list(hosts))
    nics = {pk: {nic.name: nic for nic in rows[pk].nics} for pk in hosts}
    attachments = {pk: rows[pk].attachments for pk in hosts}
    default_networks = state.default_route_networks({h.cluster_id for h in hosts.values()})
    now = timezone.now()
    new_nics, changed_nics, gone_nics, changed_attachments = [], [], [], []
    for host_id, host in hosts.items():
        report = reports[host_id]
        links = {i["name"]: i for i in report.get("interfaces", [])}
        managed = set(report.get("managed") or [])
        known = dict(nics[host_id])
        for name, link in links.items():
            if link.get("type") not in NIC_TYPES or name in managed:
                continue
            nic = known.pop(name, None) or HostNic(host=host, name=name)
            values = {"mac": link.get("mac") or "", "mtu": link.get("mtu") or c.MTU_DEFAULT,
                      "link_up": link.get("state") == "up", "speed": link.get("speed")}
            if nic.pk is None or any(getattr(nic, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(nic, key, value)
                nic.updated = now
                (new_nics if nic.pk is None else changed_nics).append(nic)
        # No longer reported: kept only while something uses it.
        used = {a.nic_id for a in attachments[host_id]}
        gone_nics += [n for n in known.values() if n.pk not in used and n.bond_id is None]
        default_network = default_networks.get(host.cluster_id)
        for attachment in attachments[host_id]:
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
            attachment.updated = now
            changed_attachments.append(attachment)
        host.reported, host.last_refresh, host.updated = report, now, now
    # Reported values only: the audit log leaves them alone (portal/audit.py), so bulk
    # writes (which send no signals) lose nothing there.
    HostNic.objects.bulk_create(new_nics)
    _bulk_update(HostNic, _rows(changed_nics, ["mac", "mtu", "link_up", "speed", "updated"]))
    for nic in gone_nics:
        nic.delete()
    _bulk_update(NetworkAttachment, _rows(changed_attachments,
                                          ["reported", "in_sync", "out_of_sync", "updated"]))
    _bulk_update(Host, _rows(hosts.values(), ["reported", "last_refresh", "updated"]))
    for nic in new_nics:
        nics[nic.host_id][nic.name] = nic
    for nic in gone_nics:
        del nics[nic.host_id][nic.name]
    for pk in hosts:
        rows[pk].nics = sorted(nics[pk].values(), key=lambda n: (n.pk is None, n.pk or 0))
    data = services.hosts_rule_data(hosts.values(), networks_cache, rows=rows)
    for host_id, host in hosts.items():
        services.set_compliance_status(host, data[host_id], attachments[host_id])


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
