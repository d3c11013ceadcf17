"""A lab of real Linux hosts on one machine: network namespaces, each with its own sshd.

Why: the portal manages real network stacks over real SSH; mocks would hide ordering rules of
the kernel, host-key handling and SSH timing.  Each lab host is a namespace with veth NICs
(``eth0`` on the management bridge, ``eth1..ethK`` on one bridge per segment) and an OpenSSH
server listening on 0.0.0.0:22 inside it (see DESIGN.md, "Test lab").

Safety, because this runs as root on a shared machine:

* Only 198.18.0.0/15 is used.  Each lab takes its own /23 of 198.18.0.0/16 for management
  (the first lab 198.18.0.0/23: gateway 198.18.0.1, host i at 198.18.0.(10+i), continuing into
  198.18.1.x; up to 500 hosts); a parallel lab takes the next free /23, so labs never share
  an address.  The root namespace gets ``blackhole 198.18.0.0/15`` (marked ``proto 199``) so an
  address that does not exist fails locally instead of leaving the machine.
* The management bridge has IPv4 forwarding off, so the root namespace never routes for hosts.
* Every name carries a per-lab prefix (``np`` + 4 hex digits); ``down()`` removes exactly what
  this lab created and kills processes only by PID (its sshds and whatever runs inside its own
  namespaces), never by name.  It is idempotent and registered with atexit.

CLI: ``python tests/lab.py up N [--nics K]`` leaves a lab running and prints it as JSON;
``python tests/lab.py down [PREFIX ...]`` removes the named labs, or every lab started from the
CLI and every lab whose owning process is gone; ``python tests/lab.py list``.
"""

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
IP = shutil.which("ip") or "/usr/sbin/ip"
HOST_PYTHON = "/usr/bin/python3"
REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "hosts" / "agent" / "netportal_agent.py"
REGISTRY = Path("/run/netportal-lab")
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
MGMT_POOL = ipaddress.ip_network("198.18.0.0/16")
BLACKHOLE_PROTO = "199"
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
MAX_HOSTS = 500
SSHD_WAIT = 20.0


class LabError(RuntimeError):
    """The lab cannot be built on this machine (missing tool, no privileges, unsafe state)."""


def run(argv, input=None, check=True, timeout=60):
    """Run an argument list (never a shell string); raise LabError with stderr on failure."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True,  # noqa: S603
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(map(str, argv))} failed: {proc.stderr.strip()}")
    return proc


def batch(lines, namespace=None, force=False):
    """Many ip commands in one process: building 500 hosts must stay fast."""
    if not lines:
        return None
    argv = [IP] + (["-n", namespace] if namespace else []) + (["-force"] if force else [])
    return run(argv + ["-batch", "-"], input="\n".join(lines) + "\n", check=not force)


def write_sysctl(path, value):
    Path("/proc/sys", path).write_text(f"{value}\n")


def read_sysctl(path):
    return Path("/proc/sys", path).read_text().strip()


def fingerprint(public_line):
    """SHA256 fingerprint exactly as `ssh-keygen -lf` prints it: SHA256:<base64, no pad>."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def pid_alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def pid_cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def kill_pids(pids, grace=2.0):
    """SIGTERM, wait a little, SIGKILL: only the PIDs given."""
    pids = [p for p in pids if p and pid_alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.02)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def registry_lock():
    """Serializes subnet allocation and the shared blackhole route between labs."""
    REGISTRY.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(REGISTRY / "lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def registered_labs():
    labs = []
    if REGISTRY.is_dir():
        for path in sorted(REGISTRY.glob("np*.json")):
            with contextlib.suppress(OSError, ValueError):
                labs.append(json.loads(path.read_text()))
    return labs


def require_lab_tools():
    """Why the lab cannot run here, or None.  Tests skip with this reason."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, bridges, sshd)"
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing: install the Debian package openssh-server"
    if not os.path.exists(SSH_KEYGEN):
        return "ssh-keygen is missing: install the Debian package openssh-client"
    try:
        proc = run([IP, "netns", "list"], check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ip netns is unavailable: {exc}"
    if proc.returncode != 0:
        return f"ip netns is unavailable: {proc.stderr.strip()}"
    return None


_PROBES = {}
_MODULES = {"bond": ("bonding", "max_bonds=0"), "dummy": ("dummy", "numdummies=0"),
            "vlan": ("8021q", None)}


def kernel_supports(kind):
    """Can this kernel create a `kind` device (bond, vlan, dummy, ...)?  -> (bool, reason).

    Probed by creating one in a throwaway namespace.  A missing module is loaded first with
    the parameters that stop it from creating a bond0/dummy0 of its own in the root namespace.
    """
    if kind in _PROBES:
        return _PROBES[kind]
    module, params = _MODULES.get(kind, (None, None))
    modprobe = shutil.which("modprobe") or "/usr/sbin/modprobe"
    if module and not Path("/sys/module", module).exists() and os.path.exists(modprobe):
        run([modprobe, module] + ([params] if params else []), check=False, timeout=20)
    namespace = f"np{secrets.token_hex(2)}probe"
    run([IP, "netns", "add", namespace])
    try:
        if kind == "vlan":
            run([IP, "-n", namespace, "link", "add", "pv0", "type", "veth", "peer", "name",
                 "pv1"])
            proc = run([IP, "-n", namespace, "link", "add", "link", "pv0", "name", "pv0.5",
                        "type", "vlan", "id", "5"], check=False)
        else:
            proc = run([IP, "-n", namespace, "link", "add", "probe0", "type", kind],
                       check=False)
    finally:
        run([IP, "netns", "del", namespace], check=False)
    if proc.returncode == 0:
        result = (True, f"kernel supports {kind} devices")
    else:
        result = (False, f"this kernel cannot create {kind} devices "
                         f"(no {module or kind} driver): {proc.stderr.strip()}")
    _PROBES[kind] = result
    return result


@dataclass
class LabHost:
    """One lab host as the portal sees it: an address, port 22 and a pinned host key."""

    index: int
    name: str
    namespace: str
    address: str
    port: int
    nics: list
    folder: str
    host_key: str = ""
    fingerprint: str = ""
    sshd_pid: int = 0
    root_veths: list = field(default_factory=list)

    @property
    def state_dir(self):
        return os.path.join(self.folder, "state")

    @property
    def resolv_conf(self):
        return os.path.join(self.folder, "resolv.conf")

    @property
    def sshd_config(self):
        return os.path.join(self.folder, "sshd_config")

    @property
    def host_key_path(self):
        return os.path.join(self.folder, "ssh_host_ed25519_key")

    @property
    def known_hosts_line(self):
        return f"{self.address} {' '.join(self.host_key.split()[:2])}"


class Lab:
    """N hosts, each a namespace with NICs eth0..ethK and its own sshd.

    Use as a context manager (or call up()/down()).  `hosts[i].address` answers SSH on port
    22 with the key `hosts[i].host_key` for any public key given to `authorize()`.
    """

    def __init__(self, n=3, nics=3, base_dir=None, prefix=None, detached=False):
        if not 1 <= n <= MAX_HOSTS:
            raise LabError(f"a lab has 1..{MAX_HOSTS} hosts, not {n}")
        if not 0 <= nics <= 20:
            raise LabError("a lab host has 0..20 extra NICs")
        self.n, self.nics = n, nics
        self.base_dir = base_dir
        self.prefix = prefix or f"np{secrets.token_hex(2)}"
        self.detached = detached
        self.folder = None
        self.subnet = None
        self.gateway = None
        self.hosts = []
        self.mgmt_bridge = f"{self.prefix}mgmt"
        self.segment_bridges = [f"{self.prefix}s{j}" for j in range(1, nics + 1)]
        self.added_blackhole = False
        self._procs = {}
        self._is_up = False
        self._owner = os.getpid()

    # -- building ------------------------------------------------------------------------

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()
        return False

    @property
    def authorized_keys(self):
        return os.path.join(self.folder, "authorized_keys")

    @property
    def namespaces(self):
        return [h.namespace for h in self.hosts]

    def up(self):
        """Build the lab; on any failure tear down what was built and re-raise."""
        reason = require_lab_tools()
        if reason:
            raise LabError(reason)
        if any(lab["prefix"] == self.prefix for lab in registered_labs()):
            raise LabError(f"a lab with prefix {self.prefix} already exists")
        self.folder = tempfile.mkdtemp(prefix="netportal-lab-", dir=self.base_dir)
        Path(self.authorized_keys).touch(mode=0o600)
        atexit.register(self.down)
        self._is_up = True
        try:
            with registry_lock():
                self._allocate_subnet()
                self._save_registry()
                self._build_root()
            self._build_hosts()
            self._save_registry()
            self._start_all_sshd()
            self._save_registry()
        except BaseException:
            self.down()
            raise
        return self

    def _allocate_subnet(self):
        used = {lab.get("subnet") for lab in registered_labs()}
        routes = json.loads(run([IP, "-json", "route", "show", "table", "all"]).stdout or "[]")
        for route in routes:
            if route.get("type", "unicast") == "unicast" and route.get("dst", "") != "default":
                with contextlib.suppress(ValueError):
                    net = ipaddress.ip_network(route["dst"], strict=False)
                    if net.version == 4 and net.overlaps(MGMT_POOL) and net.prefixlen >= 16:
                        used.add(str(net.supernet(new_prefix=23)) if net.prefixlen > 23
                                 else str(net))
        for subnet in MGMT_POOL.subnets(new_prefix=23):
            if str(subnet) not in used:
                self.subnet = subnet
                self.gateway = subnet.network_address + 1
                return
        raise LabError("no free /23 left in 198.18.0.0/16 for another lab")

    def _address(self, index):
        address = self.subnet.network_address + 10 + index
        if address not in self.subnet or address == self.subnet.broadcast_address:
            raise LabError(f"host {index} does not fit in {self.subnet}")
        assert address in LAB_RANGE
        return address

    def _build_root(self):
        """Management bridge with the gateway address, segment bridges, blackhole route."""
        lines = [f"link add {self.mgmt_bridge} type bridge stp_state 0"]
        lines += [f"link add {b} type bridge stp_state 0" for b in self.segment_bridges]
        batch(lines)
        self._save_registry()
        for bridge in [self.mgmt_bridge] + self.segment_bridges:
            write_sysctl(f"net/ipv6/conf/{bridge}/disable_ipv6", 1)
        write_sysctl(f"net/ipv4/conf/{self.mgmt_bridge}/forwarding", 0)
        if read_sysctl("net/ipv4/ip_forward") == "1" and \
                read_sysctl(f"net/ipv4/conf/{self.mgmt_bridge}/forwarding") != "0":
            raise LabError("net.ipv4.ip_forward is 1 and the lab bridge would route: refusing")
        lines = [f"address add {self.gateway}/{self.subnet.prefixlen} dev {self.mgmt_bridge}"]
        lines += [f"link set {b} up" for b in [self.mgmt_bridge] + self.segment_bridges]
        batch(lines)
        routes = json.loads(run([IP, "-json", "route", "show", "type", "blackhole"]).stdout
                            or "[]")
        if not any(r.get("dst") == str(LAB_RANGE) for r in routes):
            run([IP, "route", "add", "blackhole", str(LAB_RANGE), "proto", BLACKHOLE_PROTO])
            self.added_blackhole = True

    def _build_hosts(self):
        for index in range(1, self.n + 1):
            name = f"h{index}"
            folder = os.path.join(self.folder, name)
            os.makedirs(os.path.join(folder, "state"), mode=0o700)
            Path(folder, "resolv.conf").write_text("# lab host resolv.conf\n")
            self.hosts.append(LabHost(
                index=index, name=name, namespace=f"{self.prefix}{name}",
                address=str(self._address(index)), port=22,
                nics=[f"eth{j}" for j in range(0, self.nics + 1)], folder=folder,
                root_veths=[f"{self.prefix}{name}e{j}" for j in range(0, self.nics + 1)]))
        batch([f"netns add {h.namespace}" for h in self.hosts])
        self._save_registry()
        lines = []
        for host in self.hosts:
            for j, veth in enumerate(host.root_veths):
                bridge = self.mgmt_bridge if j == 0 else self.segment_bridges[j - 1]
                lines.append(f"link add {veth} type veth peer name eth{j} netns {host.namespace}")
                lines.append(f"link set {veth} master {bridge}")
                lines.append(f"link set {veth} up")
        batch(lines)
        for host in self.hosts:
            lines = ["link set lo up"] + [f"link set {nic} up" for nic in host.nics]
            lines.append(f"address add {host.address}/{self.subnet.prefixlen} dev eth0")
            batch(lines, namespace=host.namespace)

    def _generate_host_key(self, host):
        for suffix in ("", ".pub"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(host.host_key_path + suffix)
        run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"{host.namespace}",
             "-f", host.host_key_path])
        host.host_key = Path(host.host_key_path + ".pub").read_text().strip()
        host.fingerprint = fingerprint(host.host_key)

    def _write_sshd_config(self, host):
        Path(host.sshd_config).write_text(f"""\
# sshd of lab host {host.namespace}; written by tests/lab.py
Port 22
ListenAddress 0.0.0.0
AddressFamily inet
HostKey {host.host_key_path}
PidFile {host.folder}/sshd.pid
AuthorizedKeysFile {self.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
LogLevel ERROR
MaxStartups 1000
MaxSessions 100
Subsystem sftp internal-sftp
SetEnv HOME={host.folder} NETPORTAL_STATE_DIR={host.state_dir} \
NETPORTAL_RESOLV_CONF={host.resolv_conf} PATH={HOST_PATH}
""")

    def _start_all_sshd(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for host in self.hosts:
            self._generate_host_key(host)
            self._write_sshd_config(host)
            self._spawn_sshd(host)
        self._wait_sshd(self.hosts)

    def _spawn_sshd(self, host):
        # `ip netns exec` execs sshd, so the PID we get is sshd's own.
        proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
            [IP, "netns", "exec", host.namespace, SSHD, "-D", "-f", host.sshd_config,
             "-E", os.path.join(host.folder, "sshd.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        self._procs[host.name] = proc
        host.sshd_pid = proc.pid

    def _wait_sshd(self, hosts):
        """Bounded wait until each sshd answers with an SSH banner on its address."""
        deadline = time.monotonic() + SSHD_WAIT
        waiting = list(hosts)
        while waiting:
            for host in list(waiting):
                proc = self._procs.get(host.name)
                if proc is not None and proc.poll() is not None:
                    log = Path(host.folder, "sshd.log")
                    text = log.read_text() if log.exists() else ""
                    raise LabError(f"sshd of {host.name} exited ({proc.returncode}): {text}")
                if banner(host.address, host.port):
                    waiting.remove(host)
            if waiting and time.monotonic() > deadline:
                raise LabError(f"sshd did not answer on {[h.address for h in waiting]}")
            if waiting:
                time.sleep(0.05)

    # -- using ---------------------------------------------------------------------------

    def host(self, name):
        return next(h for h in self.hosts if h.name == name)

    def authorize(self, public_key_line):
        """Let a public key (one OpenSSH line) log in as root on every host of this lab."""
        with open(self.authorized_keys, "a") as handle:
            handle.write(public_key_line.strip() + "\n")

    def make_client_key(self):
        """A client key pair in the lab folder, authorized; returns the private key path."""
        path = os.path.join(self.folder, "client_ed25519")
        if not os.path.exists(path):
            run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "lab-client", "-f", path])
            self.authorize(Path(path + ".pub").read_text())
        return path

    def exec(self, host, argv, input=None, timeout=60, check=False):
        """Run an argument list inside the host's namespace; returns CompletedProcess."""
        return run([IP, "netns", "exec", host.namespace] + list(map(str, argv)), input=input,
                   check=check, timeout=timeout)

    def agent_env(self, host):
        return [f"PATH={HOST_PATH}", f"HOME={host.folder}",
                f"NETPORTAL_STATE_DIR={host.state_dir}",
                f"NETPORTAL_RESOLV_CONF={host.resolv_conf}"]

    def agent(self, host, command, payload=None, args=(), agent_path=AGENT, timeout=60):
        """Run the agent inside the host (no SSH) the way sshd would; -> (rc, answer)."""
        argv = ["env", "-i"] + self.agent_env(host) + [HOST_PYTHON, str(agent_path), command]
        proc = self.exec(host, argv + list(args), input=json.dumps(payload or {}),
                         timeout=timeout)
        try:
            answer = json.loads(proc.stdout)
        except ValueError:
            answer = {"ok": False, "error": {"code": "not_json", "message": proc.stdout
                                             + proc.stderr}}
        return proc.returncode, answer

    def link(self, host, name):
        """The parsed `ip -json -d link show NAME` entry inside a host, or None."""
        proc = run([IP, "-n", host.namespace, "-json", "-d", "link", "show", "dev", name],
                   check=False)
        if proc.returncode != 0:
            return None
        entries = json.loads(proc.stdout or "[]")
        return entries[0] if entries else None

    def addresses(self, host, name, family="inet"):
        """The host's addresses on a link as "a.b.c.d/len" strings."""
        proc = run([IP, "-n", host.namespace, "-json", "addr", "show", "dev", name],
                   check=False)
        if proc.returncode != 0:
            return []
        entries = json.loads(proc.stdout or "[]")
        return [f"{a['local']}/{a['prefixlen']}" for e in entries
                for a in e.get("addr_info", []) if a.get("family") == family]

    def stop_sshd(self, host):
        """Make a host unreachable over SSH (connections are refused) until start_sshd."""
        proc = self._procs.pop(host.name, None)
        if self._owns_sshd(host):
            kill_pids([host.sshd_pid] + self.ssh_sessions(host))
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        host.sshd_pid = 0

    def ssh_sessions(self, host):
        """PIDs of the host's open SSH sessions: its sshd's children (one per connection).
        Stopping sshd ends them too, as a host going away does; OpenSSH alone would keep
        them, and a worker's kept connection with them."""
        if not host.sshd_pid:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stat = Path(entry.path, "stat").read_bytes()
                    if int(stat.rsplit(b")", 1)[1].split()[1]) == host.sshd_pid:
                        found.append(int(entry.name))
        return found

    def start_sshd(self, host):
        if host.sshd_pid and pid_alive(host.sshd_pid):
            return
        self._spawn_sshd(host)
        self._wait_sshd([host])
        self._save_registry()

    def regenerate_host_key(self, host):
        """Give the host a new host key (what a reinstalled or spoofed host looks like)."""
        self.stop_sshd(host)
        self._generate_host_key(host)
        self.start_sshd(host)
        return host.host_key

    def _owns_sshd(self, host):
        # sshd rewrites its process title, so look for the config path anywhere in it.
        title = b" ".join(pid_cmdline(host.sshd_pid))
        return bool(host.sshd_pid) and host.sshd_config.encode() in title

    # -- tearing down --------------------------------------------------------------------

    def down(self):
        """Remove exactly what this lab created.  Idempotent; safe after a partial up()."""
        if not self._is_up or os.getpid() != self._owner and not self.detached:
            return
        self._is_up = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.down)
        errors = []
        listeners = [h.sshd_pid for h in self.hosts if self._owns_sshd(h)]
        existing = set(run([IP, "netns", "list"], check=False).stdout.split())
        namespaces = [ns for ns in self._all_namespaces() if ns in existing]
        inside = []
        for namespace in namespaces:
            proc = run([IP, "netns", "pids", namespace], check=False)
            inside += [int(p) for p in proc.stdout.split() if p.isdigit()]
        # Sessions and agent timers first, while their sshd parent is alive to reap them.
        kill_pids([p for p in inside if p not in listeners])
        kill_pids(listeners + inside)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._procs.clear()
        if namespaces:
            batch([f"netns del {ns}" for ns in namespaces], force=True)
        links = json.loads(run([IP, "-json", "link", "show"], check=False).stdout or "[]")
        ours = [entry["ifname"] for entry in links
                if entry["ifname"].startswith(self.prefix)]
        if ours:
            batch([f"link del {name}" for name in ours], force=True)
        try:
            with registry_lock():
                with contextlib.suppress(FileNotFoundError):
                    (REGISTRY / f"{self.prefix}.json").unlink()
                self._drop_blackhole_if_last()
        except OSError as exc:
            errors.append(str(exc))
        if self.folder and os.path.isdir(self.folder):
            shutil.rmtree(self.folder, ignore_errors=True)
        if errors:
            raise LabError("; ".join(errors))

    def _all_namespaces(self):
        names = [h.namespace for h in self.hosts]
        names += [f"{self.prefix}h{i}" for i in range(1, self.n + 1)]
        return list(dict.fromkeys(names))

    def _drop_blackhole_if_last(self):
        """Delete the lab blackhole route when no other lab's bridge still exists."""
        links = json.loads(run([IP, "-json", "link", "show", "type", "bridge"],
                               check=False).stdout or "[]")
        others = [e["ifname"] for e in links if e["ifname"].startswith("np")
                  and e["ifname"].endswith("mgmt") and not e["ifname"].startswith(self.prefix)]
        if others or any(lab["prefix"] != self.prefix for lab in registered_labs()):
            return
        routes = json.loads(run([IP, "-json", "route", "show", "type", "blackhole"],
                                check=False).stdout or "[]")
        for route in routes:
            if route.get("dst") == str(LAB_RANGE) and str(route.get("protocol")) in (
                    BLACKHOLE_PROTO, "199"):
                run([IP, "route", "del", "blackhole", str(LAB_RANGE), "proto",
                     BLACKHOLE_PROTO], check=False)

    # -- registry (so `lab.py down` can clean a lab another process started) -------------

    def _save_registry(self):
        REGISTRY.mkdir(mode=0o755, parents=True, exist_ok=True)
        data = {"prefix": self.prefix, "folder": self.folder, "n": self.n, "nics": self.nics,
                "subnet": str(self.subnet) if self.subnet else None,
                "gateway": str(self.gateway) if self.gateway else None,
                "owner_pid": self._owner, "detached": self.detached,
                "added_blackhole": self.added_blackhole,
                "hosts": [asdict(h) for h in self.hosts]}
        path = REGISTRY / f"{self.prefix}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)

    @classmethod
    def from_registry(cls, data):
        lab = cls(n=data["n"], nics=data["nics"], prefix=data["prefix"], detached=True)
        lab.folder = data["folder"]
        lab.subnet = ipaddress.ip_network(data["subnet"]) if data["subnet"] else None
        lab.gateway = ipaddress.ip_address(data["gateway"]) if data["gateway"] else None
        lab.added_blackhole = data.get("added_blackhole", False)
        lab.hosts = [LabHost(**h) for h in data["hosts"]]
        lab._owner = data["owner_pid"]
        lab._is_up = True
        return lab

    def describe(self):
        return {"prefix": self.prefix, "folder": self.folder, "subnet": str(self.subnet),
                "gateway": str(self.gateway), "authorized_keys": self.authorized_keys,
                "hosts": [{"name": h.name, "namespace": h.namespace, "address": h.address,
                           "port": h.port, "nics": h.nics, "folder": h.folder,
                           "host_key": h.host_key, "fingerprint": h.fingerprint}
                          for h in self.hosts]}


def banner(address, port, timeout=0.3):
    """True when an SSH server answers with its version banner."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@contextlib.contextmanager
def scratch_namespace(nics=2, folder=None):
    """A bare namespace with veth NICs eth1..ethN (pairs eth1/eth2, ...), no sshd.

    For tests that only run the agent locally and compare the kernel before and after.
    Yields (namespace name, state folder).
    """
    namespace = f"np{secrets.token_hex(2)}x"
    workdir = tempfile.mkdtemp(prefix="netportal-ns-", dir=folder)
    run([IP, "netns", "add", namespace])
    try:
        lines = ["link set lo up"]
        for j in range(1, nics + 1, 2):
            lines.append(f"link add eth{j} type veth peer name eth{j + 1}")
        lines += [f"link set eth{j} up" for j in range(1, nics + 1 + nics % 2)]
        batch(lines, namespace=namespace)
        yield namespace, workdir
    finally:
        proc = run([IP, "netns", "pids", namespace], check=False)
        kill_pids([int(p) for p in proc.stdout.split() if p.isdigit()])
        run([IP, "netns", "del", namespace], check=False)
        shutil.rmtree(workdir, ignore_errors=True)



def run_agent(namespace, workdir, command, payload=None, args=(), agent_path=None):
    """Run the agent inside a bare namespace with its state in ``workdir`` -> (rc, answer)."""
    env = [f"PATH={HOST_PATH}", f"HOME={workdir}", f"NETPORTAL_STATE_DIR={workdir}/state",
           f"NETPORTAL_RESOLV_CONF={workdir}/resolv.conf"]
    argv = [IP, "netns", "exec", namespace, "env", "-i", *env, HOST_PYTHON,
            str(agent_path or AGENT), command, *args]
    text = payload if isinstance(payload, str) else json.dumps(payload or {})
    proc = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    return proc.returncode, json.loads(proc.stdout)


def kernel_state(namespace):
    """What the agent could change, from `ip -json -d link` and `ip -json addr`.

    Counters, operstate and IPv6 link-local addresses drift by themselves right after links
    come up (carrier, DAD), so they are left out of the comparison.
    """
    def ip_json(*what):
        proc = subprocess.run([IP, "-n", namespace, "-json", *what], capture_output=True,
                              text=True, check=True)
        return json.loads(proc.stdout or "[]")

    links = sorted((e["ifname"], (e.get("linkinfo") or {}).get("info_kind"), e["mtu"],
                    e.get("master"), "UP" in e.get("flags", []), e.get("address"))
                   for e in ip_json("-d", "link", "show"))
    addrs = sorted((e["ifname"], a["family"], a["local"], a["prefixlen"])
                   for e in ip_json("addr", "show") for a in e.get("addr_info", [])
                   if a.get("scope") != "link")
    return links, addrs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build a lab and leave it running")
    up.add_argument("n", type=int)
    up.add_argument("--nics", type=int, default=3)
    up.add_argument("--dir", default=None)
    down = sub.add_parser("down", help="remove labs")
    down.add_argument("prefixes", nargs="*")
    sub.add_parser("list", help="show registered labs")
    args = parser.parse_args(argv)
    if args.command == "up":
        lab = Lab(args.n, nics=args.nics, base_dir=args.dir, detached=True).up()
        atexit.unregister(lab.down)
        info = lab.describe()
        info["client_key"] = lab.make_client_key()
        print(json.dumps(info, indent=1))
        return 0
    if args.command == "list":
        for data in registered_labs():
            alive = pid_alive(data["owner_pid"])
            print(f"{data['prefix']} {data['subnet']} hosts={data['n']} "
                  f"detached={data['detached']} owner_alive={alive} {data['folder']}")
        return 0
    for data in registered_labs():
        chosen = data["prefix"] in args.prefixes if args.prefixes else (
            data["detached"] or not pid_alive(data["owner_pid"]))
        if chosen:
            Lab.from_registry(data).down()
            print(f"removed {data['prefix']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
