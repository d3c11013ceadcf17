"""The portal's two set-up commands, runnable with nothing but Python 3.11+:

    python3 -m portal run     install what is needed, migrate, load the demo inventory into an
                              empty database, start the web server and a worker
    python3 -m portal test    install the test dependencies and run the whole test suite

Standard library only until the virtual environment exists: this file is what a new user
runs on a fresh machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NETPORTAL_VENV") or ROOT / ".venv")
PYTHON = VENV / "bin" / "python"


def log(message: str) -> None:
    print(f"[portal] {message}", flush=True)


def run(argv: list[str], **kwargs) -> None:
    subprocess.run(argv, check=True, **kwargs)


def ensure_venv(requirements: str) -> None:
    """Create the virtual environment and install the pinned requirements once (again only
    when a requirements file changes)."""
    if not PYTHON.exists():
        log(f"creating the virtual environment in {VENV}")
        try:
            run([sys.executable, "-m", "venv", str(VENV)])
        except subprocess.CalledProcessError:
            shutil.rmtree(VENV, ignore_errors=True)
            if os.geteuid() == 0 and shutil.which("apt-get"):
                log("Debian's python3-venv is missing: installing it")
                run(["apt-get", "install", "-y", "-q", "python3-venv"])
                run([sys.executable, "-m", "venv", str(VENV)])
            else:
                sys.exit("python3 cannot create a virtual environment: install Debian's "
                         "python3-venv package (apt-get install python3-venv) and retry")
    files = [ROOT / "requirements.txt", ROOT / "constraints.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.exists())).hexdigest()
    stamp = VENV / f".installed-{Path(requirements).stem}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    log(f"installing {requirements} (pinned)")
    run([str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", str(ROOT / requirements), "-c", str(ROOT / "constraints.txt")])
    stamp.write_text(digest)


def manage(*args: str, env=None) -> None:
    run([str(PYTHON), str(ROOT / "manage.py"), *args], cwd=ROOT, env=env)


def command_run(argv: list[str]) -> int:
    """Run the portal on the embedded default (or what the environment selects)."""
    ensure_venv("requirements.txt")
    env = os.environ.copy()
    address = env.get("NETPORTAL_LISTEN", "127.0.0.1:8000")
    manage("migrate", "--noinput", "-v", "0", env=env)
    manage("bootstrap_portal", env=env)  # demo inventory when empty, first admin account
    log(f"starting the web server on http://{address}/ and a worker (Ctrl-C stops both)")
    children = [
        subprocess.Popen([str(PYTHON), "-m", "celery", "-A", "portal.celery", "worker", "-B",
                          "--loglevel", "INFO", "--concurrency", "2",
                          "--schedule", str(data_dir(env) / "celerybeat-schedule")],
                         cwd=ROOT, env=env),
        subprocess.Popen([str(PYTHON), str(ROOT / "manage.py"), "runserver", "--noreload",
                          address], cwd=ROOT, env=env),
    ]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return max((child.returncode or 0) for child in children)


def data_dir(env) -> Path:
    path = Path(env.get("NETPORTAL_DATA_DIR") or ROOT / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def command_test(argv: list[str]) -> int:
    """Run the whole suite; arguments go to pytest."""
    ensure_venv("requirements-test.txt")
    run([str(PYTHON), "-m", "ruff", "check", "--quiet", "."], cwd=ROOT)
    return subprocess.call([str(PYTHON), "-m", "pytest", *argv], cwd=ROOT)


def main(argv: list[str]) -> int:
    commands = {"run": command_run, "test": command_test}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
