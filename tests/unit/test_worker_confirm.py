"""The confirmation steps of a checked apply (hosts/worker.py `_apply`), one function at a
time, with stand-in connections: which path each outcome of the channel takes.

The real conversation (apply, pending, confirm on the same channel) and the real fallback
(the change cuts the channel, the host's timer rolls back) run against lab hosts in
tests/integration/test_hosts_lab.py and tests/agent/test_agent_lab.py; these tests cover
the outcomes a lab cannot produce on demand (a confirmation whose answer is lost).
"""

from __future__ import annotations

import queue

import pytest

from hosts import ssh, worker
from hosts.choices import JobHostStatus
from hosts.models import Host

DOCUMENT = {"transaction": "job1-1-abc", "check_connectivity": True, "rollback_timeout": 1}
PENDING = {"ok": True, "status": "pending", "transaction": "job1-1-abc", "changes": 2,
           "commands": ["link add x type bridge"], "report": {"interfaces": []}}


class Channel:
    """Stands in for a connection: answers agent commands from a script of outcomes."""

    def __init__(self, script: dict):
        self.script = script
        self.calls: list[str] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def agent(self, command, payload=None, timeout=None, flags=(), reply=None):
        self.calls.append(command)
        outcome = self.script[command]
        if isinstance(outcome, Exception):
            raise outcome
        if reply is not None:  # a conversation: the first answer, then what follows it
            first, then = outcome
            following = reply(first)
            if isinstance(then, Exception):
                raise then
            return then if following else first
        return outcome


def make_run() -> worker.HostRun:
    return worker.HostRun(1, Host(name="h1", address="198.18.0.10"), queue.Queue(),
                          {"transaction_prefix": "job1-1-"})


def events(run: worker.HostRun) -> list[tuple[str, dict]]:
    found = []
    while not run.events.empty():
        _run, kind, data, _reply = run.events.get()
        found.append((kind, data))
    return found


@pytest.fixture
def fresh(monkeypatch):
    """`ssh.connect` hands out the given stand-ins, one per new connection."""
    made: list[Channel] = []

    def install(*channels: Channel):
        pending = list(channels)

        def connect(host, pkey, password=None):
            if not pending:
                raise ssh.SshError("unreachable", "no route", retryable=True)
            made.append(pending.pop(0))
            return made[-1]

        monkeypatch.setattr(worker.ssh, "connect", connect)
        monkeypatch.setattr(worker, "CONFIRM_MARGIN", 0)
        return made

    return install


def test_confirmed_on_the_same_channel_needs_no_new_connection(fresh):
    made = fresh()
    conn = Channel({"apply": (PENDING, {"ok": True, "status": "committed",
                                        "transaction": "job1-1-abc"})})
    run = make_run()
    answer = worker._apply(run, conn, None, DOCUMENT)
    assert answer["status"] == "committed" and answer["report"] == PENDING["report"]
    assert made == [] and conn.calls == ["apply"]
    kinds = [kind for kind, _ in events(run)]
    assert kinds[:2] == ["applied", "status"]


def test_channel_lost_after_pending_confirms_over_a_fresh_connection(fresh):
    made = fresh(Channel({"confirm": {"ok": True, "status": "committed"}}))
    conn = Channel({"apply": (PENDING, ssh.SshError("channel_lost", "lost"))})
    run = make_run()
    answer = worker._apply(run, conn, None, DOCUMENT)
    assert answer["status"] == "committed" and answer["report"] == PENDING["report"]
    assert [c.calls for c in made] == [["confirm"]]
    kinds = [kind for kind, _ in events(run)]
    assert kinds.count("applied") == 1  # announced once, by the conversation


def test_confirmation_answer_lost_but_host_committed_is_committed(fresh):
    """Neither channel answers the confirmation, yet the host committed it: the status
    read after the deadline says so, and the entry is committed (not rolled back)."""
    made = fresh(Channel({"confirm": ssh.SshError("channel_lost", "lost")}),
                 Channel({"status": {"ok": True, "pending": None,
                                     "committed": "job1-1-abc"}}))
    conn = Channel({"apply": (PENDING, ssh.SshError("channel_lost", "lost"))})
    answer = worker._apply(make_run(), conn, None, DOCUMENT)
    assert answer["status"] == "committed"
    assert [c.calls for c in made] == [["confirm"], ["status"]]


def test_host_that_rolled_back_by_itself_is_rolled_back(fresh):
    fresh(Channel({"confirm": ssh.SshError("channel_lost", "lost")}),
          Channel({"status": {"ok": True, "pending": None, "committed": "job0-1-old"}}))
    conn = Channel({"apply": ssh.SshError("channel_lost", "lost")})
    with pytest.raises(worker.StepFailed) as caught:
        worker._apply(make_run(), conn, None, DOCUMENT)
    assert caught.value.status == JobHostStatus.ROLLED_BACK


def test_confirmation_refused_on_the_channel_is_rolled_back(fresh):
    made = fresh()
    refused = ssh.AgentError("already_rolled_back", "passed its deadline",
                             {"ok": False, "error": {"code": "already_rolled_back"}})
    conn = Channel({"apply": (PENDING, refused)})
    with pytest.raises(worker.StepFailed) as caught:
        worker._apply(make_run(), conn, None, DOCUMENT)
    assert caught.value.status == JobHostStatus.ROLLED_BACK
    assert "already_rolled_back" in str(caught.value) and made == []


def test_unchecked_apply_is_one_plain_command(fresh):
    made = fresh()
    committed = {"ok": True, "status": "committed", "transaction": "job1-1-abc"}
    conn = Channel({"apply": committed})
    answer = worker._apply(make_run(), conn, None, {**DOCUMENT, "check_connectivity": False})
    assert answer == committed and made == []
