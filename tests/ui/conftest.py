"""Browser tests: real headless Chromium (Debian's ``chromium`` package) driven by Playwright
for Python against pytest-django's live server, each test in a fresh browser profile.

Chromium comes from the system (``executable_path``); Playwright's own browser download is
never used. Without Chromium (or Playwright) the tests skip with the probed reason, unless
``NETPORTAL_REQUIRE_BROWSER=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.probes import unavailable

CHROMIUM = os.environ.get("NETPORTAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}  # the screen the portal must look right on
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "ui-password-long-enough"

# Playwright's sync API runs an event loop in the test's thread; the ORM calls the tests
# make there (fixtures, assertions) are synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _probe() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="session")
def playwright_instance():
    reason = _probe()
    if reason:
        unavailable(reason, "NETPORTAL_REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def page(playwright_instance, tmp_path, live_server):
    """A page of a fresh Chromium profile (its own --user-data-dir), 1366 px wide."""
    context = playwright_instance.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
        headless=True, viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    page = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def queued(monkeypatch):
    """Jobs queued during the test (no worker runs here; the lab tests run jobs)."""
    from hosts import services, tasks

    calls: list[int] = []
    monkeypatch.setattr(tasks.run_job, "delay", lambda job_id: calls.append(job_id))
    monkeypatch.setattr(tasks.run_job, "apply_async",
                        lambda args, **kwargs: calls.append(args[0]))
    if hasattr(services, "enqueue_job"):
        monkeypatch.setattr(services, "enqueue_job", lambda job_id: calls.append(job_id))
    return calls


@pytest.fixture
def operator(transactional_db, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)


@pytest.fixture
def logged_in(page, live_server, operator):
    """The page, logged in through the login form."""
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("User name").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    return page


def shoot(page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/screenshots/ (gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def lab(transactional_db):
    """An inventory built through the services, with one host as rows (status Up) as the
    agent would have reported it: data center, cluster, networks, host with four NICs."""
    from types import SimpleNamespace

    from hosts.choices import HostKeyState, HostStatus
    from hosts.models import Host, HostNic, NetworkAttachment
    from networks import services
    from networks.choices import BootProtocol
    from networks.models import Cluster, DataCenter, Network

    dc = services.create_datacenter(DataCenter(name="dc-lab", description="Lab"))
    cluster = services.create_cluster(Cluster(datacenter=dc, name="cluster-a"))
    vmnet = services.create_network(Network(datacenter=dc, name="vm-prod", vlan=100))
    services.attach_network(cluster, vmnet, required=False)
    host = Host.objects.create(name="host-a", address="198.18.0.10", cluster=cluster,
                               status=HostStatus.UP, host_key_state=HostKeyState.APPROVED)
    nics = HostNic.objects.bulk_create(
        HostNic(host=host, name=f"eth{i}", mac=f"52:54:00:00:0a:{i:02x}", speed=10000)
        for i in range(4))
    NetworkAttachment.objects.create(
        host=host, network=services.management_network(dc), nic=nics[0],
        ipv4_boot_protocol=BootProtocol.STATIC, ipv4_address="198.18.0.10",
        ipv4_netmask="255.255.255.0", ipv4_gateway="198.18.0.254")
    return SimpleNamespace(dc=dc, cluster=cluster, host=host, vmnet=vmnet, nics=nics)
