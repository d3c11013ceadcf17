"""Build the QEMU tier's guest: a Debian kernel and a small busybox initramfs (stdlib only).

Why this exists: the development and CI kernels have no bonding, 802.1Q or dummy driver, so
the agent's bond and VLAN paths can only be proven on a real Debian kernel booted under
``qemu-system-x86_64 -accel tcg``.  The guest is as small as it can be while still taking the
portal's real path: Debian's own ``sshd`` (not dropbear: it is the server the lab and real
hosts run, with SFTP built in as ``internal-sftp`` for the agent upload), Debian's
``python3.11`` with only the stdlib modules the agent reaches, iproute2's ``ip`` (the agent
parses its JSON; busybox's ``ip`` has no ``-json``), and busybox for everything else.

Everything comes from Debian packages: the kernel ``.deb`` is fetched with
``apt-get download`` into a cache folder kept between runs (``$NETPORTAL_QEMU_CACHE``, else
``/var/cache/netportal-qemu``); the userland binaries are the ones installed on this machine
(``openssh-server``, ``python3.11``, ``iproute2``, ``busybox-static``), copied with the
libraries ``ldd`` names.  The initramfs is cached under a hash of all of its content, so a
second run only boots.

Keys are never in the cached image: `keys_archive` makes a second, tiny cpio (a fresh host
key and the fixture's client key) that is concatenated to the cached one at boot; the
kernel unpacks concatenated archives in order.

Run ``python3 tests/qemu/build.py`` to build (or check) the cached image by hand.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_VERSION = "1"  # bump to force a rebuild when the layout below changes

GUEST_PYTHON = "/usr/bin/python3.11"
PYTHON_LIB = "/usr/lib/python3.11"
BUSYBOX = "/bin/busybox"
DASH = "/bin/dash"
SSHD = "/usr/sbin/sshd"
EXTRA_LIBS = ("libgcc_s.so.1",)  # dlopen()ed by glibc on thread cancellation
# Modules the guest loads; their dependencies come from each module's own `depends=`.
WANTED_MODULES = ("virtio_pci", "virtio_net", "bonding", "8021q", "dummy", "bridge")
# Debian packages the tier needs on the machine that runs it (CI installs .ci/qemu-packages).
HOST_PACKAGES = ("qemu-system-x86", "busybox-static", "openssh-server", "openssh-client",
                 "iproute2", "python3.11")

# QEMU's user network is moved into the lab range (conftest: -netdev user,net=...), so no
# address outside 198.18.0.0/15 appears anywhere, not even inside the guest.
GUEST_NET = "198.18.254.0/24"
GUEST_ADDRESS = "198.18.254.15/24"
READY_MARK = "NETPORTAL-GUEST-READY"
NICS = ("eth1", "eth2", "eth3", "eth4")


class BuildError(Exception):
    """The guest cannot be built here; the message says what is missing."""


def log(message: str) -> None:
    print(f"[qemu-build] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """The cache folder kept between runs (kernel .deb, extracted modules, initramfs)."""
    path = Path(os.environ.get("NETPORTAL_QEMU_CACHE") or "/var/cache/netportal-qemu")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError:
        path = Path.home() / ".cache" / "netportal-qemu"
        path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# Host tools
# --------------------------------------------------------------------------------------------

def apt_install(packages: list[str]) -> str | None:
    """Install Debian packages with apt-get (root only); the error text or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                 ["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True,  # noqa: S603
                              check=False, timeout=600)
        if proc.returncode == 0 and argv[1] == "install":
            return None
    return (proc.stderr or proc.stdout).strip()[-400:]


def ensure_host_tools() -> str:
    """Install what is missing of the host packages; the qemu-system-x86_64 path.

    Raises BuildError (the reason) when QEMU or a userland piece is missing and cannot be
    installed.
    """
    checks = {"qemu-system-x86": shutil.which("qemu-system-x86_64"),
              "busybox-static": os.path.exists(BUSYBOX) and _is_static(BUSYBOX),
              "openssh-server": os.path.exists(SSHD),
              "openssh-client": shutil.which("ssh-keygen"),
              "iproute2": _ip_path(),
              "python3.11": os.path.exists(GUEST_PYTHON)}
    missing = [name for name, found in checks.items() if not found]
    if missing:
        log(f"installing Debian packages {' '.join(missing)}")
        error = apt_install(missing)
        if error:
            raise BuildError(f"missing {' '.join(missing)} and cannot install them: {error}")
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise BuildError("qemu-system-x86_64 is not installed and could not be installed")
    return qemu


def _is_static(path: str) -> bool:
    proc = subprocess.run(["ldd", path], capture_output=True, text=True,  # noqa: S603,S607
                          check=False)
    return proc.returncode != 0 or "not a dynamic" in proc.stdout + proc.stderr


def _ip_path() -> str | None:
    for candidate in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        if os.path.exists(candidate) and not os.path.realpath(candidate).endswith("busybox"):
            return candidate
    return None


def libraries(paths: list[str]) -> set[str]:
    """Every shared library (and the loader) the given ELF files need, as real paths."""
    found: set[str] = set()
    for path in paths:
        proc = subprocess.run(["ldd", path], capture_output=True, text=True,  # noqa: S603,S607
                              check=False)
        for line in proc.stdout.splitlines():
            match = re.search(r"(/\S+)\s+\(0x", line)
            if match:
                found.add(match.group(1))
    return found


# --------------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------------

def kernel_deb(cache: Path) -> Path:
    """The cached linux-image-*-amd64 .deb, downloaded with apt-get the first time."""
    debs = sorted(cache.glob("linux-image-*-amd64_*.deb"))
    if debs:
        return debs[-1]
    proc = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],  # noqa: S603,S607
                          capture_output=True, text=True, check=False)
    match = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b", proc.stdout)
    if not match:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True,  # noqa: S603,S607
                       check=False, timeout=300)
        proc = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],  # noqa: S603,S607
                              capture_output=True, text=True, check=False)
        match = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b", proc.stdout)
    if not match:
        raise BuildError("apt-cache knows no linux-image-amd64 (no Debian archive?)")
    package = match.group(1)
    log(f"downloading {package} into {cache}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user must be able to write there
        proc = subprocess.run(["apt-get", "download", "-q", package],  # noqa: S603,S607
                              cwd=tmp, capture_output=True, text=True, check=False,
                              timeout=600)
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise BuildError(f"apt-get download {package} failed: {proc.stderr.strip()}")
        target = cache / debs[0].name
        os.replace(debs[0], target)
    return target


def _modinfo(data: bytes, field: str) -> str | None:
    match = re.search(rb"(?:^|\0)" + field.encode() + rb"=([^\0]*)\0", data)
    return match.group(1).decode() if match else None


def extract_kernel(cache: Path) -> Path:
    """vmlinuz and the wanted modules (with their dependencies) from the .deb, cached.

    Reads the package's data tar as a stream (``dpkg-deb --fsys-tarfile``), noting every
    module's ``depends=`` and keeping only what the closure of `WANTED_MODULES` needs.
    """
    deb = kernel_deb(cache)
    target = cache / (deb.stem + f"-extract{BUILD_VERSION}")
    if (target / "manifest.json").exists():
        return target
    log(f"extracting the kernel and modules from {deb.name}")
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
    try:
        depends: dict[str, list[str]] = {}
        paths: dict[str, str] = {}
        kept: dict[str, bytes] = {}
        kernel_version = None
        for _attempt in range(2):
            need = _closure(WANTED_MODULES, depends) if depends else set(WANTED_MODULES)
            proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],  # noqa: S603,S607
                                    stdout=subprocess.PIPE)
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = member.name.lstrip("./")
                    if re.fullmatch(r"boot/vmlinuz-.*", name) and member.isfile():
                        (tmp / "vmlinuz").write_bytes(tar.extractfile(member).read())
                        kernel_version = name.split("vmlinuz-", 1)[1]
                    elif name.endswith(".ko") and member.isfile():
                        data = tar.extractfile(member).read()
                        module = _modinfo(data, "name") or Path(name).stem
                        deps = _modinfo(data, "depends") or ""
                        depends[module] = [d for d in deps.split(",") if d]
                        paths[module] = name.split("/", 3)[3]  # relative to lib/modules/VER
                        # Keep the likely ones on the first pass; a second pass is only
                        # needed when a dependency lives elsewhere.
                        if module in need or paths[module].startswith(
                                ("kernel/net/", "kernel/drivers/virtio/")):
                            kept[module] = data
            proc.wait()
            full = _closure(WANTED_MODULES, depends)
            if full <= set(kept):
                break
        missing = _closure(WANTED_MODULES, depends) - set(kept)
        if missing or not kernel_version:
            raise BuildError(f"kernel package lacks {sorted(missing) or 'vmlinuz'}")
        closure = _closure(WANTED_MODULES, depends)
        for module in closure:
            dest = tmp / "modules" / paths[module]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(kept[module])
        manifest = {"version": kernel_version, "deb": deb.name,
                    "modules": {m: {"path": paths[m], "depends": depends[m]}
                                for m in sorted(closure)}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _closure(roots, depends: dict[str, list[str]]) -> set[str]:
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(depends.get(name, []))
    return seen


# --------------------------------------------------------------------------------------------
# cpio (newc), written here so the build needs no cpio binary and is byte-reproducible
# --------------------------------------------------------------------------------------------

class Cpio:
    """An in-memory list of entries written as one newc archive (what the kernel reads)."""

    def __init__(self):
        self.entries: dict[str, tuple[int, bytes]] = {}

    def dir(self, path: str, mode: int = 0o755) -> None:
        parts = path.strip("/").split("/")
        for index in range(1, len(parts) + 1):
            sub = "/".join(parts[:index])
            if sub not in self.entries:
                self.entries[sub] = (0o040000 | (mode if index == len(parts) else 0o755), b"")

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        if "/" in path:
            self.dir(os.path.dirname(path))
        self.entries[path] = (0o100000 | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        if "/" in path:
            self.dir(os.path.dirname(path))
        self.entries[path] = (0o120000 | 0o777, target.encode())

    def copy(self, source: str, dest: str | None = None, mode: int | None = None) -> None:
        """A host file at the same (or the given) path, its symlinks resolved."""
        real = os.path.realpath(source)
        data = Path(real).read_bytes()
        self.file(dest or source, data, mode if mode is not None else
                  os.stat(real).st_mode & 0o7777)

    def write(self, handle) -> None:
        ino = 1000
        for path in sorted(self.entries):
            mode, data = self.entries[path]
            ino += 1
            _cpio_entry(handle, path, mode, data, ino)
        _cpio_entry(handle, "TRAILER!!!", 0, b"", 0)

    def digest(self) -> str:
        sha = hashlib.sha256()
        for path in sorted(self.entries):
            mode, data = self.entries[path]
            sha.update(f"{path}\0{mode}\0{len(data)}\0".encode())
            sha.update(data)
        return sha.hexdigest()


def _cpio_entry(handle, path: str, mode: int, data: bytes, ino: int) -> None:
    name = path.encode() + b"\0"
    nlink = 2 if mode & 0o040000 else 1
    header = "070701" + "".join(f"{v:08x}" for v in (
        ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name), 0))
    handle.write(header.encode() + name)
    handle.write(b"\0" * (-(110 + len(name)) % 4))
    handle.write(data)
    handle.write(b"\0" * (-len(data) % 4))


# --------------------------------------------------------------------------------------------
# The guest's file system
# --------------------------------------------------------------------------------------------

INIT = """#!/bin/sh
# PID 1 of the QEMU test guest: mount, load the drivers under test, bring up the management
# NIC (QEMU user networking, no default route: the guest talks to nothing but the forwarded
# SSH port), make the dummy "NICs", start sshd, then become busybox init (reaps orphans such
# as the agent's detached rollback timer).
export PATH=/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd
ip link set lo up
modprobe virtio_pci
modprobe virtio_net
modprobe bonding max_bonds=0
modprobe dummy numdummies=0
modprobe 8021q
modprobe bridge
for try in 1 2 3 4 5 6 7 8 9 10; do ip link show eth0 >/dev/null 2>&1 && break; sleep 0.2; done
ip address add {address} dev eth0
ip link set eth0 up
/usr/sbin/netportal-reset
/usr/sbin/sshd -f /etc/ssh/sshd_config -E /var/log/sshd.log
echo "{ready} $(uname -r)" > /dev/ttyS0
exec /usr/bin/busybox init
"""

# Puts the guest's network back to the state right after boot (the fixture runs it between
# tests): only lo, eth0 (management) and the dummy NICs, no agent state, no rollback timer.
RESET = """#!/bin/sh
export PATH=/usr/sbin:/usr/bin
for pid in $(pgrep -f netportal_agent 2>/dev/null; pgrep -f 'agent-.*_timer' 2>/dev/null); do
    kill -9 "$pid" 2>/dev/null
done
for dev in $(ls /sys/class/net); do
    case "$dev" in lo|eth0|{nics_case}) ;; *) ip link del "$dev" 2>/dev/null ;; esac
done
for nic in {nics}; do
    [ -e /sys/class/net/$nic ] || ip link add "$nic" type dummy
    ip link set "$nic" nomaster 2>/dev/null
    ip address flush dev "$nic"
    ip link set "$nic" mtu 1500 up
done
rm -rf /var/lib/netportal
exit 0
"""

SSHD_CONFIG = """# The test guest's sshd: key authentication for root only, SFTP in-process.
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PidFile /run/sshd.pid
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


def python_files() -> list[str]:
    """The stdlib files the agent can reach (modulefinder, run by the guest's own Python)."""
    agent = HERE.parent.parent / "hosts" / "agent" / "netportal_agent.py"
    script = (
        "import json, modulefinder, sys\n"
        "mf = modulefinder.ModuleFinder(excludes=['tkinter', 'unittest', 'pydoc', 'doctest',"
        " 'email', 'http', 'urllib', 'xml', 'pdb', 'asyncio', 'ctypes', 'sqlite3',"
        " 'distutils', 'multiprocessing', 'concurrent', 'ssl'])\n"
        "mf.run_script(sys.argv[1])\n"
        "for name in ('site', '_sitebuiltins', 'sitecustomize', 'encodings.utf_8',"
        " 'encodings.ascii', 'encodings.latin_1', 'encodings.aliases', 'runpy'):\n"
        "    try:\n        mf.import_hook(name)\n    except ImportError:\n        pass\n"
        "print(json.dumps(sorted(m.__file__ for n, m in mf.modules.items()"
        " if m.__file__ and n != '__main__')))\n")
    proc = subprocess.run([GUEST_PYTHON, "-I", "-c", script, str(agent)],  # noqa: S603
                          capture_output=True, text=True, check=True)
    return [f for f in json.loads(proc.stdout) if f.startswith(PYTHON_LIB + "/")]


def compiled_python(files: list[str]) -> dict[str, bytes]:
    """{guest path: bytes} for the stdlib .py files plus unchecked-hash .pyc files.

    Compiled by the guest's own interpreter (same magic number) ahead of time: compiling on
    every agent run would cost seconds of emulated CPU.
    """
    sources = [f for f in files if f.endswith(".py")]
    with tempfile.TemporaryDirectory() as tmp:
        script = (
            "import json, py_compile, sys, importlib.util\n"
            "out = {}\n"
            "for i, src in enumerate(json.loads(sys.stdin.read())):\n"
            "    dest = sys.argv[1] + '/%d.pyc' % i\n"
            "    py_compile.compile(src, cfile=dest, dfile=src, doraise=True,"
            " invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
            "    out[importlib.util.cache_from_source(src)] = dest\n"
            "print(json.dumps(out))\n")
        proc = subprocess.run([GUEST_PYTHON, "-I", "-c", script, tmp],  # noqa: S603
                              input=json.dumps(sources), capture_output=True, text=True,
                              check=True)
        result = {}
        for pyc, built in json.loads(proc.stdout).items():
            result[pyc] = Path(built).read_bytes()
    for src in files:
        result[src] = Path(os.path.realpath(src)).read_bytes()
    return result


def guest_tree(kernel: Path) -> Cpio:
    """Everything of the initramfs but the keys."""
    manifest = json.loads((kernel / "manifest.json").read_text())
    version = manifest["version"]
    image = Cpio()
    for path in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "proc", "sys", "dev", "run",
                 "tmp", "root", "var/lib", "var/log", "var/empty", "etc/ssh/authorized_keys"):
        image.dir(path)
    image.dir("tmp", 0o1777)
    image.dir("root", 0o700)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                         ("lib64", "usr/lib64")):
        image.symlink(link, target)

    ip = _ip_path()
    binaries = [GUEST_PYTHON, SSHD, ip]
    for path in binaries:
        image.copy(path, path.replace("/sbin/", "/usr/sbin/") if path.startswith("/sbin")
                   else path, 0o755)
    image.symlink("usr/bin/python3", "python3.11")
    if not ip.startswith("/usr/sbin/"):
        image.symlink("usr/sbin/ip", ip)
    image.copy(BUSYBOX, "/usr/bin/busybox", 0o755)
    # Debian's busybox-static prefers its own applets inside its shell, so `ip` typed in an
    # SSH command would be busybox's ip (no -json): the shell is dash, the applets are links.
    binaries.append(DASH)
    image.copy(DASH, "/usr/bin/dash", 0o755)
    image.symlink("usr/bin/sh", "dash")
    provided = {"ip", "python3", "python3.11", "sshd", "busybox", "sh"}
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,  # noqa: S603
                             check=True).stdout.split()
    for applet in applets:
        if applet not in provided and applet not in ("init", "linuxrc"):
            image.symlink(f"usr/bin/{applet}", "busybox")

    pyfiles = python_files()
    dynload = [f for f in pyfiles if f.endswith(".so")]
    for path, data in compiled_python(pyfiles).items():
        image.file(path, data, 0o755 if path.endswith(".so") else 0o644)
    libs = libraries(binaries + dynload)
    for name in EXTRA_LIBS:
        for folder in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
            if os.path.exists(f"{folder}/{name}"):
                libs.add(f"{folder}/{name}")
                break
    for lib in sorted(libs):
        guest = lib if lib.startswith("/usr/") else "/usr" + lib
        image.copy(lib, guest, 0o755)

    moddir = f"usr/lib/modules/{version}"
    deps = []
    for module, info in manifest["modules"].items():
        image.copy(str(kernel / "modules" / info["path"]), f"{moddir}/{info['path']}", 0o644)
        chain = [manifest["modules"][d]["path"]
                 for d in _load_order(module, manifest["modules"]) if d != module]
        deps.append(f"{info['path']}: {' '.join(chain)}".rstrip())
    image.file(f"{moddir}/modules.dep", ("\n".join(sorted(deps)) + "\n").encode())

    image.file("init", INIT.format(address=GUEST_ADDRESS, ready=READY_MARK).encode(), 0o755)
    image.file("usr/sbin/netportal-reset",
               RESET.format(nics=" ".join(NICS), nics_case="|".join(NICS)).encode(), 0o755)
    image.file("etc/inittab", b"::ctrlaltdel:/usr/bin/true\n")
    image.file("etc/ssh/sshd_config", SSHD_CONFIG.encode())
    image.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n")
    image.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    image.file("etc/shadow", b"root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n", 0o600)
    image.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nshadow: files\n"
               b"hosts: files\n")
    image.file("etc/hosts", b"127.0.0.1 localhost\n")
    image.file("etc/hostname", b"netportal-qemu\n")
    image.file("etc/resolv.conf", b"# test guest: no resolver\n")
    return image


def _load_order(module: str, modules: dict) -> list[str]:
    """Dependencies first (what modules.dep lists after the colon, deepest last)."""
    order: list[str] = []

    def visit(name):
        for dep in modules[name]["depends"]:
            visit(dep)
        if name not in order:
            order.append(name)

    visit(module)
    order.reverse()
    return order


def build(force: bool = False) -> dict:
    """Build (or reuse) the cached kernel and initramfs; {kernel, initrd, version, ...}."""
    cache = cache_dir()
    kernel = extract_kernel(cache)
    manifest = json.loads((kernel / "manifest.json").read_text())
    image = guest_tree(kernel)
    digest = hashlib.sha256((BUILD_VERSION + image.digest()).encode()).hexdigest()[:20]
    initrd = cache / f"initramfs-{digest}.cpio.gz"
    if force or not initrd.exists():
        log(f"writing {initrd.name}")
        tmp = initrd.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6,
                                                   mtime=0) as handle:
            image.write(handle)
        os.replace(tmp, initrd)
        for old in cache.glob("initramfs-*.cpio.gz"):
            if old != initrd:
                old.unlink(missing_ok=True)
    return {"kernel": str(kernel / "vmlinuz"), "initrd": str(initrd),
            "version": manifest["version"], "deb": manifest["deb"], "digest": digest}


def keys_archive(host_key: bytes, authorized_keys: str) -> bytes:
    """The tiny second cpio with the guest's host key and root's authorized key."""
    image = Cpio()
    image.file("etc/ssh/ssh_host_ed25519_key", host_key, 0o600)
    image.file("etc/ssh/authorized_keys/root", authorized_keys.encode(), 0o644)
    out = io.BytesIO()
    image.write(out)
    return out.getvalue()


def write_initrd(base: str, keys: bytes, target: Path) -> None:
    """The cached image with the keys archive appended.  The kernel only finds an
    uncompressed archive after a compressed one at a 4-byte aligned offset (zeros between
    archives are skipped), hence the padding."""
    with open(target, "wb") as handle, open(base, "rb") as source:
        size = 0
        while chunk := source.read(1 << 20):
            handle.write(chunk)
            size += len(chunk)
        handle.write(b"\0" * (-size % 4))
        handle.write(keys)


def make_host_key(folder: Path) -> tuple[bytes, str]:
    """A fresh Ed25519 host key: (OpenSSH private key, public key line)."""
    path = folder / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netportal-qemu",  # noqa: S603,S607
                    "-f", str(path)], check=True, capture_output=True)
    return path.read_bytes(), (folder / "ssh_host_ed25519_key.pub").read_text().strip()


if __name__ == "__main__":
    ensure_host_tools()
    print(json.dumps(build(force="--force" in sys.argv), indent=1))
