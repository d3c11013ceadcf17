"""The QEMU tier: a Debian kernel with bonding, 802.1Q and dummy drivers, booted once per
session under ``qemu-system-x86_64 -accel tcg``, reached the way the portal reaches hosts.

Why a guest and not namespaces: the development and CI kernels have none of those drivers,
so bonds and VLAN devices can only be proven on a kernel that has them.  Nested KVM does not
work on these machines, hence TCG; the busybox initramfs boots in seconds anyway.

Safety: QEMU user networking only, with ``restrict=on`` (the guest can reach neither the
host nor the outside) and one forwarded port bound to 127.0.0.1; the guest has no default
route.  No traffic leaves the machine.

Skips: only when QEMU cannot start here (qemu-system-x86_64 missing and not installable, no
kernel package, or the boot fails), with that reason.  With ``NETPORTAL_REQUIRE_QEMU=1`` (CI)
the same situations fail the tests instead.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

from tests import probes
from tests.qemu import build

# Seconds until the ready line: about 8 s here; generous for a loaded machine, and settable
# for a slower one.
BOOT_TIMEOUT = float(os.environ.get("NETPORTAL_QEMU_BOOT_TIMEOUT") or 180)
SSH_TIMEOUT = 60


def unavailable(reason: str):
    """Skip with the reason, or fail when CI requires the tier."""
    probes.unavailable(f"QEMU guest unavailable: {reason}", "NETPORTAL_REQUIRE_QEMU")


def client_key() -> tuple[paramiko.Ed25519Key, str]:
    """A fresh Ed25519 key for this session: (paramiko key, authorized_keys line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), f"{public} netportal-qemu\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the QEMU child: get SIGKILL if pytest dies without running its teardown."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Guest:
    """A booted guest: where its sshd is forwarded and the host key to pin."""

    port: int
    host_key_type: str
    host_key: str
    host_key_fingerprint: str
    pkey: paramiko.Ed25519Key
    pid: int
    kernel_version: str
    console: Path
    boot_seconds: float
    build_seconds: float
    cached: bool
    extra: dict = field(default_factory=dict)

    def host(self, name: str = "qemu-guest"):
        """An unsaved `hosts.models.Host` for the guest (no database needed)."""
        from hosts.choices import HostKeyState
        from hosts.models import Host

        return Host(name=name, address="127.0.0.1", ssh_port=self.port, ssh_user="root",
                    host_key_type=self.host_key_type, host_key=self.host_key,
                    host_key_fingerprint=self.host_key_fingerprint,
                    host_key_state=HostKeyState.APPROVED)

    def connect(self):
        """A fresh connection through the portal's own SSH code (pinned key, RejectPolicy)."""
        from hosts import ssh

        return ssh.connect(self.host(), self.pkey)


def boot(workdir: Path) -> tuple[subprocess.Popen, Guest]:
    """Build (or reuse) the image, add fresh keys, start QEMU and wait until SSH answers."""
    started = time.monotonic()
    try:
        qemu = build.ensure_host_tools()
        cache_before = {p.name for p in build.cache_dir().glob("initramfs-*")}
        image = build.build()
    except (build.BuildError, subprocess.SubprocessError, OSError) as exc:
        unavailable(str(exc))
    build_seconds = time.monotonic() - started
    host_key_pem, host_key_line = build.make_host_key(workdir)
    pkey, authorized = client_key()
    initrd = workdir / "initrd"
    build.write_initrd(image["initrd"], build.keys_archive(host_key_pem, authorized), initrd)
    key_type, key_b64 = host_key_line.split()[:2]
    from hosts import ssh

    fingerprint = ssh.fingerprint(paramiko.PKey.from_type_string(key_type,
                                                                 base64.b64decode(key_b64)))
    console = workdir / "console.log"
    port = free_port()
    argv = [qemu, "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "512", "-nodefaults",
            "-display", "none", "-no-reboot", "-kernel", image["kernel"], "-initrd",
            str(initrd), "-append",
            "console=ttyS0 panic=-1 quiet mitigations=off random.trust_cpu=on",
            "-serial", f"file:{console}",
            "-netdev", f"user,id=mgmt,restrict=on,net={build.GUEST_NET},"
                       f"hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=mgmt"]
    boot_started = time.monotonic()
    with open(workdir / "qemu.log", "wb") as qemu_log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qemu_log,  # noqa: S603
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    guest = Guest(port=port, host_key_type=key_type, host_key=key_b64,
                  host_key_fingerprint=fingerprint, pkey=pkey, pid=proc.pid,
                  kernel_version=image["version"], console=console, boot_seconds=0.0,
                  build_seconds=build_seconds,
                  cached=Path(image["initrd"]).name in cache_before,
                  extra={"deb": image["deb"]})
    try:
        wait_ready(proc, guest, workdir)
    except RuntimeError as exc:
        stop(proc)
        unavailable(str(exc))
    guest.boot_seconds = time.monotonic() - boot_started
    return proc, guest


def wait_ready(proc: subprocess.Popen, guest: Guest, workdir: Path) -> None:
    """The ready line on the serial console, then an SSH login that works."""
    from hosts import ssh

    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        text = guest.console.read_text(errors="replace") if guest.console.exists() else ""
        if build.READY_MARK in text:
            break
        if proc.poll() is not None:
            log = (workdir / "qemu.log").read_text(errors="replace")
            raise RuntimeError(f"QEMU exited with {proc.returncode} during boot: "
                               f"{(log + text).strip()[-800:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no ready line within {BOOT_TIMEOUT} s; console: "
                               f"{text.strip()[-800:]}")
        time.sleep(0.2)
    deadline = time.monotonic() + SSH_TIMEOUT
    while True:
        try:
            with guest.connect() as conn:
                status, _out, err = conn.run(["true"], timeout=30)
            if status == 0:
                return
            problem = err.decode(errors="replace")
        except ssh.SshError as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the guest's sshd did not let us in: {problem}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Kill QEMU by its PID (the one we started) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def qemu_guest():
    """The booted guest for the whole session; QEMU is killed at teardown whatever happens."""
    with tempfile.TemporaryDirectory(prefix="netportal-qemu-") as tmp:
        workdir = Path(tmp)
        proc, guest = boot(workdir)
        try:
            sys.stderr.write(f"\n[qemu] kernel {guest.kernel_version}, image "
                             f"{'cached' if guest.cached else 'built'} in "
                             f"{guest.build_seconds:.1f} s, booted in "
                             f"{guest.boot_seconds:.1f} s\n")
            yield guest
        finally:
            stop(proc)


def run_checked(conn, argv: list[str]) -> str:
    status, out, err = conn.run(argv, timeout=60)
    assert status == 0, f"{argv} failed ({status}): {err.decode(errors='replace')}"
    return out.decode()


def reset(connection) -> None:
    """Put the guest's network back to its boot-time state: only lo, eth0 and the dummy
    NICs eth1..eth4; no agent state, no rollback timer.  Done before each test (not after:
    the next test resets anyway, and QEMU dies after the last), so a failed test leaves its
    state to look at and never leaks into the next."""
    run_checked(connection, ["/usr/sbin/netportal-reset"])


@pytest.fixture
def guest(qemu_guest):
    """The guest, reset; for tests that open fresh connections themselves."""
    with qemu_guest.connect() as connection:
        reset(connection)
    return qemu_guest


@pytest.fixture
def conn(qemu_guest):
    """One connection to the reset guest, for the whole test."""
    with qemu_guest.connect() as connection:
        reset(connection)
        yield connection
