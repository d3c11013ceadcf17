"""SSH to hosts with paramiko: pinned host keys, the portal's own key, the agent.

Rules (DESIGN.md "SSH and workers"): host keys are verified against the key pinned in the
database (``RejectPolicy``, never auto-add); a key seen for the first time is recorded as
pending with its SHA-256 fingerprint and needs an operator's approval, unless it matches the
fingerprint the operator gave when adding the host; a changed key is refused. Authentication
uses the portal's key pair only (no agent, no ~/.ssh keys), every timeout is set, and stdout
and stderr are read fully before the exit status. Called from tasks only, never from views.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from django.db import transaction

from hosts.choices import HostKeyState
from hosts.models import Host, PortalKeyPair
from portal import crypto

AGENT_PATH = Path(__file__).resolve().parent / "agent" / "netportal_agent.py"
AGENT_SOURCE = AGENT_PATH.read_bytes()
AGENT_DIGEST = hashlib.sha256(AGENT_SOURCE).hexdigest()
# Where the agent lives on a host, relative to the SSH user's home; the digest in the name
# makes an upgrade a new file, so a host never runs a half-written agent.
AGENT_REMOTE_DIR = ".netportal"
AGENT_REMOTE_NAME = f"agent-{AGENT_DIGEST[:16]}.py"
AGENT_MODULE = AGENT_REMOTE_NAME[:-3]
AGENT_MISSING = 97  # exit status of the agent command line when this version is absent

CONNECT_TIMEOUT = 10
BANNER_TIMEOUT = 10
AUTH_TIMEOUT = 10
COMMAND_TIMEOUT = 300

# Faster, modern algorithms first: curve25519 key exchange costs a fraction of the
# post-quantum or classic DH groups on these small machines (BENCHMARKS.md).
PREFERRED_KEX = ("curve25519-sha256@libssh.org", "curve25519-sha256")


_agent_module = None
_agent_module_lock = threading.Lock()


def agent_module():
    """The agent's code as a module of this process: the portal parses what a host's
    kernel read prints with the very functions the agent runs there. Loaded once, by the
    first of the host threads that needs it."""
    global _agent_module
    with _agent_module_lock:
        if _agent_module is None:
            spec = importlib.util.spec_from_file_location("netportal_agent", AGENT_PATH)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _agent_module = module
    return _agent_module


class SshError(Exception):
    """A host could not be reached or refused us; ``code`` is stable, ``retryable`` tells
    whether trying again later may help (never for key or authentication problems)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class AgentError(Exception):
    """The agent answered with an error (its JSON ``error``), or answered nothing usable."""

    def __init__(self, code: str, message: str, answer: dict | None = None):
        super().__init__(message)
        self.code = code
        self.answer = answer or {}


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA-256 fingerprint as OpenSSH prints it (``SHA256:`` + unpadded base64)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# --- The portal's key pair --------------------------------------------------------------

_key_lock = threading.Lock()


def portal_key() -> tuple[paramiko.PKey, PortalKeyPair]:
    """The portal's Ed25519 key pair, made on first use and stored encrypted."""
    with _key_lock:
        pair = PortalKeyPair.objects.order_by("pk").first()
        if pair is None:
            pair = _make_key_pair()
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(crypto.decrypt(pair.private_key)))
    return key, pair


@transaction.atomic
def _make_key_pair() -> PortalKeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    return PortalKeyPair.objects.create(private_key=crypto.encrypt(pem),
                                        public_key=f"{public} netportal",
                                        fingerprint=fingerprint(key))


def public_key_line() -> str:
    """The line operators put in a host's ``authorized_keys``."""
    return portal_key()[1].public_key


# --- Host keys --------------------------------------------------------------------------


def _sock(host: Host) -> socket.socket:
    try:
        return socket.create_connection((host.address, host.ssh_port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise SshError("unreachable", f"Cannot connect to {host.address}:{host.ssh_port}: "
                       f"{exc.strerror or exc}", retryable=True) from None


def scan_host_key(host: Host) -> paramiko.PKey:
    """The host key the host presents, read by a key exchange with no authentication."""
    transport = paramiko.Transport(_sock(host))
    try:
        _prefer_fast_kex(transport)
        transport.banner_timeout = BANNER_TIMEOUT
        transport.start_client(timeout=CONNECT_TIMEOUT)
        return transport.get_remote_server_key()
    except paramiko.SSHException as exc:
        raise SshError("ssh_failed", f"SSH handshake with {host.address} failed: {exc}",
                       retryable=True) from None
    finally:
        transport.close()


def evaluate_host_key(host: Host, key: paramiko.PKey) -> dict:
    """Decide on a presented host key without touching the database.

    Returns the host fields to store (the caller writes them). Raises `SshError` when the key
    differs from the pinned one (``host_key_changed``) or from the fingerprint the operator
    gave (``host_key_mismatch``). A key the operator has not vouched for is stored as
    pending: nothing runs on the host until it is approved.
    """
    seen = fingerprint(key)
    blob = key.get_base64()
    if host.host_key and host.host_key_state in (HostKeyState.APPROVED, HostKeyState.CHANGED):
        if blob != host.host_key:
            raise SshError("host_key_changed",
                           f"The host key of {host.name} changed: pinned "
                           f"{host.host_key_fingerprint}, presented {seen}. Refused; approve "
                           "the new key only if you know why it changed.")
        return {}
    expected = (host.expected_fingerprint or "").strip()
    if expected and expected != seen:
        raise SshError("host_key_mismatch",
                       f"The host key of {host.name} is {seen}, not the expected {expected}. "
                       "Refused.")
    state = HostKeyState.APPROVED if expected else HostKeyState.PENDING
    return {"host_key_type": key.get_name(), "host_key": blob, "host_key_fingerprint": seen,
            "host_key_state": state}


# --- Connections ------------------------------------------------------------------------


def _prefer_fast_kex(transport: paramiko.Transport) -> None:
    options = transport.get_security_options()
    kex = list(options.kex)
    options.kex = [k for k in PREFERRED_KEX if k in kex] + [k for k in kex
                                                           if k not in PREFERRED_KEX]


def _host_key_entry(host: Host) -> str:
    return host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"


@dataclass
class Connection:
    """An authenticated SSH connection to one host; use as a context manager.

    One taken from `connect_kept` goes back to its pool at the end of a ``with`` block that
    ended without an exception (for the next job to the host); any other is closed.
    """

    host: Host
    client: paramiko.SSHClient
    pool: ConnectionPool | None = None
    pool_key: tuple = ()
    opened: float = field(default_factory=time.monotonic)
    _server: _AgentServer | None = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.pool is not None and exc_type is None:
            self.pool.give(self)
        else:
            self.close()

    def close(self) -> None:
        self._close_server()
        self.client.close()

    def alive(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Whether the host still answers on this connection: a session channel opened and
        closed (one round trip; OpenSSH starts no process for it)."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            return False
        try:
            transport.open_session(timeout=timeout).close()
        except (paramiko.SSHException, OSError, EOFError):
            return False
        return True

    def run(self, argv: list[str], stdin: bytes = b"", timeout: int = COMMAND_TIMEOUT
            ) -> tuple[int, bytes, bytes]:
        """Run a command (an argument list, quoted for the remote shell); read both streams
        fully, then the exit status."""
        return self.run_line(" ".join(_quote(a) for a in argv), stdin, timeout)

    def run_line(self, command: str, stdin: bytes = b"", timeout: int = COMMAND_TIMEOUT
                 ) -> tuple[int, bytes, bytes]:
        """Run a command line (already quoted for the remote shell), as `run` does."""
        try:
            channel = self.client.get_transport().open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = _read_all(channel, timeout)
            status = channel.recv_exit_status()
            channel.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError("channel_lost", f"The connection to {self.host.name} was lost: "
                           f"{exc}") from None
        return status, out, err

    def ensure_agent(self) -> str:
        """Upload the agent once per version (temporary name, renamed, digest checked)."""
        try:
            sftp = self.client.open_sftp()
        except (paramiko.SSHException, OSError) as exc:
            raise SshError("sftp_failed", f"SFTP to {self.host.name} failed: {exc}") from None
        try:
            try:
                sftp.stat(f"{AGENT_REMOTE_DIR}/{AGENT_REMOTE_NAME}")
                return f"{AGENT_REMOTE_DIR}/{AGENT_REMOTE_NAME}"
            except OSError:
                pass
            try:
                sftp.mkdir(AGENT_REMOTE_DIR, 0o700)
            except OSError:
                pass  # exists
            # A name of its own per upload: two sessions uploading at once (two jobs on
            # one host, or hosts sharing a home folder) must not rename each other's file.
            temporary = f"{AGENT_REMOTE_DIR}/.{AGENT_REMOTE_NAME}.{secrets.token_hex(4)}.tmp"
            sftp.putfo(io.BytesIO(AGENT_SOURCE), temporary)
            status, out, _err = self.run(["sha256sum", temporary])
            if status != 0 or out.split()[:1] != [AGENT_DIGEST.encode()]:
                raise SshError("agent_upload_corrupt",
                               f"The agent uploaded to {self.host.name} does not match its "
                               "digest.")
            sftp.posix_rename(temporary, f"{AGENT_REMOTE_DIR}/{AGENT_REMOTE_NAME}")
            return f"{AGENT_REMOTE_DIR}/{AGENT_REMOTE_NAME}"
        finally:
            sftp.close()

    def agent(self, command: str, payload: dict | None = None,
              timeout: int = COMMAND_TIMEOUT, flags: tuple[str, ...] = (),
              reply: Callable[[dict], dict | None] | None = None) -> dict:
        """Run one agent command with ``payload``; its JSON answer.

        Commands go to the agent's ``serve`` on this connection, started on first use and
        kept with the connection (`ConnectionPool`), so a job on a kept connection starts no
        Python on the host. The agent is run first and uploaded only when the host lacks
        this version (the command line then exits with AGENT_MISSING before Python starts,
        so nothing ran). It runs as a module (``python3 -m``) so Python keeps its compiled
        bytecode on the host instead of compiling 1,800 lines each start.

        ``reply`` holds a conversation (``apply --await-confirm``): it gets the agent's first
        answer and returns the payload to send next (or None); the last answer is returned.
        A first answer that is an error raises as usual.

        Errors: `AgentError` for an error answer, or when the agent ended without answering
        (it was killed: the host's timer decides, never a confirmation); `SshError`
        (``channel_lost``) when the connection failed, after which the command may have run.
        """
        server = self._agent_server(timeout)
        try:
            server.send({"command": command, "flags": list(flags), "payload": payload or {}})
            answer = self._served_answer(server, timeout)
            if reply is not None and answer.get("ok") is not False:
                following = reply(answer)
                if following:
                    server.send(following)
                    answer = self._served_answer(server, timeout)
                elif answer.get("status") == "pending":
                    # The agent waits for a confirmation line: end its input instead (the
                    # timer decides), so that no later request is taken for one.
                    self._close_server()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._close_server()
            raise SshError("channel_lost", f"The connection to {self.host.name} was lost: "
                           f"{exc}") from None
        if answer.get("ok") is False:
            error = answer.get("error") or {}
            raise AgentError(error.get("code", "agent_failed"),
                             error.get("message", "the agent failed"), answer)
        return answer

    def _agent_server(self, timeout: float) -> _AgentServer:
        """The agent's ``serve`` on this connection, started (and uploaded) when needed."""
        server = self._server
        if server is not None and not server.ended():
            return server
        self._close_server()
        line = (f"cd {AGENT_REMOTE_DIR} 2>/dev/null && test -f {AGENT_REMOTE_NAME} "
                f"|| exit {AGENT_MISSING}; exec python3 -m {AGENT_MODULE} serve")
        for attempt in (1, 2):
            try:
                channel = self.client.get_transport().open_session(timeout=timeout)
                channel.exec_command(line)
                server = _AgentServer(channel)
                hello = server.line(timeout)
            except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
                raise SshError("channel_lost", f"The connection to {self.host.name} was "
                               f"lost: {exc}") from None
            if hello is not None:
                self._server = server
                self._answer(hello)
                return server
            status, err = server.finish()
            if status == AGENT_MISSING and attempt == 1:
                self.ensure_agent()
                continue
            raise AgentError("agent_no_answer", f"The agent on {self.host.name} did not start "
                             f"(exit {status}): {err.decode(errors='replace').strip()[-500:]}")
        raise AssertionError("unreachable")

    def _served_answer(self, server: _AgentServer, timeout: float) -> dict:
        line = server.line(timeout)
        if line is None:  # the agent ended without answering (killed, crashed)
            status, err = server.finish()
            self._close_server()
            raise AgentError("agent_no_answer",
                             f"The agent on {self.host.name} ended without answering (exit "
                             f"{status}): {err.decode(errors='replace').strip()[-500:]}")
        return self._answer(line)

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.channel.close()
            self._server = None

    def read_state(self) -> dict:
        """The host's kernel state and the agent's files, read without starting Python on
        the host (the agent's `READ_SCRIPT`, parsed by the agent's own code here):
        {kernel, managed, pending, committed}. A drift scan of fifty hosts otherwise costs
        fifty interpreters on the hosts."""
        module = agent_module()
        status, out, err = self.run_line(module.READ_SCRIPT, timeout=COMMAND_TIMEOUT)
        try:
            if status != 0:
                raise module.AgentError("kernel_read_failed",
                                        err.decode(errors="replace").strip()[-500:])
            return module.parse_read(out.decode())
        except (module.AgentError, ValueError, KeyError, TypeError) as exc:
            raise AgentError("kernel_read_failed",
                             f"Reading the state of {self.host.name} failed (exit {status}): "
                             f"{getattr(exc, 'message', exc)}") from None

    def report(self) -> dict:
        """What the agent's ``report`` answers, read without the agent (`read_state`)."""
        read = self.read_state()
        return agent_module().report_of(read["kernel"], read["managed"])

    def _answer(self, line: bytes) -> dict:
        """One JSON answer line of the agent, as a dict."""
        try:
            answer = json.loads(line.decode(errors="replace") or "null")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise AgentError("agent_no_answer", f"The agent on {self.host.name} answered "
                             f"what is not a JSON object: {line[:500]!r}")
        return answer


def _receive(channel, recv, deadline: float) -> bytes:
    """One chunk of a stream, blocking (b"" at its end): the thread sleeps in paramiko until
    data comes, instead of polling. Fifty host threads polling every few milliseconds took
    the GIL thousands of times a second from the task's thread that writes the results."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise OSError("no answer in time")
    channel.settimeout(remaining)
    try:
        return recv(65536)
    except TimeoutError:
        raise OSError(f"no answer within {remaining:.0f} s") from None


def _read_all(channel, timeout: float) -> tuple[bytes, bytes]:
    """Both streams to their end, then the exit status.

    The end is the server's EOF (or the channel closing), not the exit status: OpenSSH may
    send the exit status while output is still on its way, and stopping there would cut an
    answer short (seen on a loaded machine with a few hundred kB of output). stdout is read
    first; stderr waits in paramiko's buffer meanwhile (what the agent writes there is a
    few lines, far below the channel's window).
    """
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    for recv, into in ((channel.recv, out), (channel.recv_stderr, err)):
        while chunk := _receive(channel, recv, deadline):
            into += chunk
    return bytes(out), bytes(err)


def _quote(arg: str) -> str:
    return shlex.quote(arg)


class _AgentServer:
    """The agent's ``serve`` on one SSH channel: a request line in, answer lines out."""

    def __init__(self, channel: paramiko.Channel):
        self.channel = channel
        self.unread = b""

    def send(self, message: dict) -> None:
        self.channel.sendall(json.dumps(message).encode() + b"\n")

    def line(self, timeout: float) -> bytes | None:
        """The next line (without its newline), or None when the agent's output ended."""
        deadline = time.monotonic() + timeout
        data = self.unread
        while b"\n" not in data:
            chunk = _receive(self.channel, self.channel.recv, deadline)
            if not chunk:
                self.unread = data
                return None
            data += chunk
        line, _newline, self.unread = data.partition(b"\n")
        return line

    def ended(self) -> bool:
        return self.channel.closed or self.channel.eof_received

    def finish(self) -> tuple[int, bytes]:
        """The exit status and the end of stderr of an agent that ended."""
        try:
            _out, err = _read_all(self.channel, CONNECT_TIMEOUT)
        except OSError:
            err = b""
        self.channel.status_event.wait(CONNECT_TIMEOUT)
        status = self.channel.exit_status
        self.channel.close()
        return status, err


class ConnectionPool:
    """SSH connections kept open between jobs, as OpenSSH's ControlPersist keeps them.

    A fleet job otherwise pays a key exchange and an authentication per host (measured here:
    about 25 ms of the host's CPU and 7 ms of the worker's, a third of an apply's cost).
    Rules that keep it as safe as a new connection:

    * a connection is reused only for the same host row, address, port, user, pinned host
      key and portal key: approving a new host key or rotating the portal's key starts new
      connections; the kept one was verified against the pin when it was opened;
    * it is kept ``NETPORTAL_SSH_KEEP`` seconds after its last use (0: never kept) and never
      reused past ``NETPORTAL_SSH_KEEP_MAX`` seconds of age, so the host key is checked
      again at least that often;
    * before reuse, the host must answer on it (`Connection.alive`); otherwise it is closed
      and a new connection made, with the usual key checks, retries and errors: a host that
      went away is reported as unreachable exactly as without the pool;
    * one thread uses a connection at a time (taken out while in use); a connection whose
      ``with`` block raised is closed, not kept;
    * a forked child (Celery's prefork pool) starts with an empty pool: it must not share
      its parent's sockets.
    """

    PER_HOST = 2  # an apply may open a second connection to the host while holding one
    LIMIT = 1024

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[tuple[float, Connection]]] = {}
        self._reaper: threading.Thread | None = None

    @staticmethod
    def settings() -> tuple[int, int]:
        from django.conf import settings

        return settings.NETPORTAL_SSH_KEEP, settings.NETPORTAL_SSH_KEEP_MAX

    @staticmethod
    def key(host: Host, pkey: paramiko.PKey) -> tuple:
        return (host.pk, host.address, host.ssh_port, host.ssh_user, host.host_key_type,
                host.host_key, pkey.get_name(), pkey.get_base64())

    def take(self, host: Host, pkey: paramiko.PKey) -> Connection | None:
        """A kept connection to ``host`` that still answers, or None."""
        keep, keep_max = self.settings()
        if not keep:
            return None
        key = self.key(host, pkey)
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                released, conn = idle.pop()
                if not idle:
                    del self._idle[key]
            now = time.monotonic()
            if now - released <= keep and now - conn.opened <= keep_max and conn.alive():
                conn.host = host  # the caller's row: fresh field values for its messages
                return conn
            conn.close()

    def give(self, conn: Connection) -> None:
        """Keep ``conn`` for the next job to its host (or close it)."""
        keep, keep_max = self.settings()
        transport = conn.client.get_transport()
        if (not keep or time.monotonic() - conn.opened > keep_max or transport is None
                or not transport.is_active()):
            conn.close()
            return
        surplus = []
        with self._lock:
            idle = self._idle.setdefault(conn.pool_key, [])
            idle.append((time.monotonic(), conn))
            if len(idle) > self.PER_HOST:
                surplus.append(idle.pop(0)[1])
            while sum(len(v) for v in self._idle.values()) > self.LIMIT:
                oldest = min(self._idle, key=lambda k: self._idle[k][0][0])
                surplus.append(self._idle[oldest].pop(0)[1])
                if not self._idle[oldest]:
                    del self._idle[oldest]
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(target=self._reap, name="ssh-pool-reaper",
                                                daemon=True)
                self._reaper.start()
        for extra in surplus:
            extra.close()

    def close_all(self) -> int:
        """Close every kept connection; how many there were."""
        with self._lock:
            kept = [conn for idle in self._idle.values() for _released, conn in idle]
            self._idle.clear()
        for conn in kept:
            conn.close()
        return len(kept)

    def size(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def _reap(self) -> None:
        """Close connections idle past NETPORTAL_SSH_KEEP; ends when none is left."""
        while True:
            keep, _keep_max = self.settings()
            time.sleep(max(0.5, min(keep / 2, 5.0)))
            now, expired = time.monotonic(), []
            with self._lock:
                for key in list(self._idle):
                    fresh = [(t, c) for t, c in self._idle[key] if now - t <= keep]
                    expired += [c for t, c in self._idle[key] if now - t > keep]
                    if fresh:
                        self._idle[key] = fresh
                    else:
                        del self._idle[key]
                done = not self._idle
                if done:  # the next `give` starts another reaper
                    self._reaper = None
            for conn in expired:
                conn.close()
            if done:
                return

    def forget(self) -> None:
        """After fork: drop the parent's connections without touching their sockets."""
        self._lock = threading.Lock()
        self._idle = {}
        self._reaper = None


POOL = ConnectionPool()
os.register_at_fork(after_in_child=POOL.forget)


def connect_kept(host: Host, pkey: paramiko.PKey) -> Connection:
    """`connect`, reusing a connection an earlier job left open to the host (`POOL`); the
    connection returns to the pool at the end of its ``with`` block."""
    conn = POOL.take(host, pkey)
    if conn is None:
        conn = connect(host, pkey)
        conn.pool, conn.pool_key = POOL, POOL.key(host, pkey)
    return conn


def connect(host: Host, pkey: paramiko.PKey | None, *, password: str | None = None
            ) -> Connection:
    """An authenticated connection, the host key checked against the pinned one.

    No database access: workers call this from many threads at once. ``pkey`` is the
    portal's key (`portal_key`); ``password`` is used instead once, to install it.
    """
    if host.host_key_state != HostKeyState.APPROVED or not host.host_key:
        raise SshError("host_key_not_approved",
                       f"The host key of {host.name} is not approved "
                       f"({host.get_host_key_state_display()}).")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pinned = paramiko.PKey.from_type_string(host.host_key_type,
                                            base64.b64decode(host.host_key))
    client.get_host_keys().add(_host_key_entry(host), host.host_key_type, pinned)
    try:
        client.connect(
            host.address, port=host.ssh_port, username=host.ssh_user,
            pkey=None if password else pkey, password=password, allow_agent=False,
            look_for_keys=False, timeout=CONNECT_TIMEOUT, banner_timeout=BANNER_TIMEOUT,
            auth_timeout=AUTH_TIMEOUT, sock=_sock(host),
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise SshError("host_key_changed",
                       f"The host key of {host.name} changed: presented "
                       f"{fingerprint(exc.key)}, pinned {host.host_key_fingerprint}. "
                       "Refused.") from None
    except paramiko.AuthenticationException:
        client.close()
        raise SshError("auth_failed",
                       f"{host.ssh_user}@{host.name} refused the portal's key: install it in "
                       "the user's authorized_keys (see the host page) or give a one-time "
                       "password.") from None
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise SshError("ssh_failed", f"SSH to {host.name} failed: {exc}",
                       retryable=True) from None
    return Connection(host, client)


def install_portal_key(host: Host, public_key: str, password: str) -> None:
    """Log in once with a password and append the portal's public key to the user's
    ``authorized_keys`` (the password is never stored in clear, logged or passed on)."""
    line = public_key
    with connect(host, None, password=password) as conn:
        status, _out, err = conn.run(
            ["sh", "-c", 'umask 077; mkdir -p ~/.ssh && touch ~/.ssh/authorized_keys && '
             'grep -qxF "$1" ~/.ssh/authorized_keys || echo "$1" >> ~/.ssh/authorized_keys',
             "sh", line])
        if status != 0:
            raise SshError("key_install_failed",
                           f"Installing the portal's key on {host.name} failed: "
                           f"{err.decode(errors='replace').strip()}")
