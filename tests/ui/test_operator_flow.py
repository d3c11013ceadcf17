"""The operator's main paths in a real browser: log in, create a network, require it in a
cluster (the host turns NonOperational), attach it on the host by drag and drop and by the
keyboard picker, preview, apply, follow the job; and the out-of-sync flag.

Uses headless Chromium (Debian's package) through Playwright, against the live server.
"""

import re

import pytest

from tests.ui.conftest import shoot

pytestmark = pytest.mark.browser


def test_login_redirects_and_dashboard(page, live_server, operator):
    page.goto(f"{live_server.url}/networks/")
    assert "/login/" in page.url
    page.get_by_label("User name").fill("operator")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    page.get_by_label("Password").fill("ui-password-long-enough")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/networks/$"))
    page.get_by_role("link", name="Dashboard").click()
    assert page.get_by_role("heading", name="Hosts by status").is_visible()
    shoot(page, "dashboard")


def test_create_network_then_require_it(logged_in, live_server, lab):
    from hosts.choices import HostStatus

    page = logged_in
    page.goto(f"{live_server.url}/networks/add/")
    page.get_by_label("Data center").select_option(label="dc-lab")
    page.get_by_label("Name").fill("bond-storage")  # refused: the 'bond' prefix
    page.get_by_label("VLAN").fill("200")
    page.get_by_role("button", name="Create").click()
    assert page.locator(".invalid-feedback").filter(has_text="bond").is_visible()
    shoot(page, "network-form-errors")
    page.get_by_label("Name").fill("storage")
    page.get_by_label("VM network").uncheck()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/networks/\d+/$"))
    assert page.get_by_role("heading", name="storage").is_visible()

    page.goto(f"{live_server.url}/clusters/{lab.cluster.pk}/networks/")
    row = page.locator("tr[data-network='storage']")
    row.get_by_label("Assign storage").check()
    row.get_by_label("storage is required").check()
    shoot(page, "cluster-manage-networks")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/clusters/{lab.cluster.pk}/$"))
    assert page.locator("[data-host-status='non_operational']").inner_text() == "NonOperational"
    lab.host.refresh_from_db()
    assert lab.host.status == HostStatus.NON_OPERATIONAL
    page.goto(f"{live_server.url}/hosts/{lab.host.pk}/")
    assert page.get_by_text("the following networks are missing on host: 'storage'").is_visible()
    page.goto(f"{live_server.url}/")
    assert page.locator("#non-operational").is_visible()
    assert page.get_by_text("host-a").first.is_visible()


def _require_storage(lab):
    from networks import services
    from networks.models import Network

    storage = services.create_network(Network(datacenter=lab.dc, name="storage", vlan=200,
                                              vm_network=False))
    services.attach_network(lab.cluster, storage, required=True)
    return storage


def _preview_and_apply(page, live_server, lab, queued, expected_change):
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    preview.wait_for(state="visible")
    assert expected_change in preview.locator(".preview-changes").inner_text()
    assert "eth" in preview.inner_text()
    shoot(page, "setup-preview")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    assert page.locator(".job-host[data-host='host-a']").is_visible()
    assert page.get_by_text("Setup networks of host-a").first.is_visible()
    from hosts.models import Job

    # The preview asked the host's agent for the commands (one job), Apply queued the setup.
    assert [Job.objects.get(pk=pk).kind for pk in queued] == ["preview", "setup_networks"]


def test_setup_by_drag_and_drop(logged_in, live_server, lab, queued):
    from hosts.choices import HostStatus

    _require_storage(lab)
    page = logged_in
    page.goto(f"{live_server.url}/hosts/{lab.host.pk}/setup-networks/")
    chip = page.locator("#unattached .net-chip[data-network='storage']")
    chip.drag_to(page.locator("#iface-eth1 .drop-zone"))
    assert page.locator("#iface-eth1 .net-chip[data-network='storage']").is_visible()
    shoot(page, "setup-networks")
    _preview_and_apply(page, live_server, lab, queued, "Attach storage to eth1")
    shoot(page, "job")
    lab.host.refresh_from_db()
    assert lab.host.status == HostStatus.UP
    assert lab.host.attachments.get(network__name="storage").nic.name == "eth1"


def test_setup_by_keyboard_picker_with_violations_shown(logged_in, live_server, lab, queued):
    _require_storage(lab)
    page = logged_in
    page.goto(f"{live_server.url}/hosts/{lab.host.pk}/setup-networks/")
    # First a refused request: the management network cannot be detached.
    page.get_by_role("button", name="Detach ovirtmgmt").click()
    page.get_by_role("button", name="Preview").click()
    violation = page.locator("#iface-eth0 .violations li")
    violation.wait_for()
    assert "management network" in violation.inner_text()
    assert page.get_by_role("button", name="Apply").is_disabled()
    page.get_by_role("button", name="Reset").click()
    # Then only the keyboard: pick eth2 for storage, press Attach with Enter.
    page.get_by_label("Interface for storage").focus()
    page.keyboard.press("End")  # last option: eth3
    page.keyboard.press("ArrowUp")  # eth2
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.locator("#iface-eth2 .net-chip[data-network='storage']").is_visible()
    # The focus follows the network to its new place.
    assert page.evaluate("document.activeElement.dataset.network") == "storage"
    # Its addresses, in the attachment editor (a dialog, keyboard-usable).
    page.keyboard.press("Enter")  # the focused button is "Edit storage"
    dialog = page.get_by_role("dialog", name="Network storage")
    dialog.wait_for()
    dialog.get_by_label("Boot protocol").first.select_option("static")
    dialog.get_by_label("Address").first.fill("198.18.5.2")
    dialog.get_by_label("Netmask or prefix").fill("24")
    dialog.get_by_role("button", name="OK").click()
    dialog.wait_for(state="hidden")
    assert "ipv4 198.18.5.2/24" in page.locator("#iface-eth2").inner_text()
    _preview_and_apply(page, live_server, lab, queued,
                       "Attach storage to eth2: IPv4 static 198.18.5.2/24")
    attachment = lab.host.attachments.get(network__name="storage")
    assert (attachment.ipv4_address, attachment.ipv4_netmask) == ("198.18.5.2", "24")


def test_bond_create_in_setup_page(logged_in, live_server, lab, queued):
    page = logged_in
    page.goto(f"{live_server.url}/hosts/{lab.host.pk}/setup-networks/")
    page.get_by_label("Select eth2 for a bond").check()
    page.get_by_label("Select eth3 for a bond").check()
    page.get_by_role("button", name="Bond selected NICs (2)").click()
    page.locator("#bond-editor").wait_for(state="visible")
    page.locator("#bond-form").get_by_role("button", name="OK").click()
    page.locator("#iface-bond0").wait_for()
    page.locator("#pick-vm-prod").select_option("bond0")
    page.get_by_role("button", name="Attach vm-prod").click()
    _preview_and_apply(page, live_server, lab, queued, "Create bond bond0")
    assert lab.host.bonds.get().slaves.count() == 2


def test_out_of_sync_shows_wanted_and_reported(logged_in, live_server, lab):
    from hosts.models import NetworkAttachment

    NetworkAttachment.objects.create(
        host=lab.host, network=lab.vmnet, nic=lab.nics[1], in_sync=False,
        out_of_sync=[{"property": "mtu", "wanted": 1500, "reported": 9000},
                     {"property": "vlan", "wanted": 100, "reported": 101}])
    page = logged_in
    page.goto(f"{live_server.url}/hosts/{lab.host.pk}/")
    table = page.get_by_role("table", name="Differences of vm-prod")
    assert "9000" in table.inner_text() and "1500" in table.inner_text()
    assert page.locator("g.topo-node.warning[data-node='net-vm-prod']").count() == 1
    shoot(page, "host")
    page.goto(f"{live_server.url}/hosts/{lab.host.pk}/setup-networks/")
    flag = page.locator("[data-out-of-sync='vm-prod']")
    assert "out of sync" in flag.inner_text()
    rows = flag.locator("tbody tr")
    assert rows.nth(0).inner_text().split() == ["mtu", "1500", "9000"]
    assert rows.nth(1).inner_text().split() == ["vlan", "100", "101"]
    flag.get_by_label("Sync").check()
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview").wait_for(state="visible")
    assert "Sync vm-prod" in page.locator(".preview-changes").inner_text()


def test_list_pages_filter_and_sort(logged_in, live_server, lab):
    page = logged_in
    page.goto(f"{live_server.url}/networks/")
    page.get_by_label("Search").fill("vm-")
    page.get_by_role("button", name="Apply").click()
    assert page.locator("table.object-list tbody tr").count() == 1
    page.goto(f"{live_server.url}/hosts/")
    page.get_by_role("link", name="Name").click()
    assert "sort=-name" in page.url or "sort=name" in page.url
    shoot(page, "hosts")
    page.goto(f"{live_server.url}/networks/")
    shoot(page, "networks")


def test_job_page_updates_live(logged_in, live_server, lab, queued):
    """The job page polls its progress every second until the job ends."""
    from django.utils import timezone

    from hosts import services
    from hosts.choices import JobHostStatus, JobKind, JobStatus
    from hosts.models import JobLog

    job = services.sync_hosts([lab.host])
    page = logged_in
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    assert page.get_by_text("Waiting for the worker").is_visible()
    JobLog.objects.create(job=job, host=lab.host, message="applied 3 changes")
    page.get_by_text("applied 3 changes").wait_for(timeout=5000)
    job.hosts.update(status=JobHostStatus.COMMITTED, finished=timezone.now())
    job.status, job.finished = JobStatus.COMMITTED, timezone.now()
    job.save()
    page.locator("#job-progress[data-job-status='committed']").wait_for(timeout=5000)
    assert page.locator("#job-progress").get_attribute("hx-trigger") is None
    assert JobKind.SYNC


def test_demo_inventory_screens(logged_in, live_server):
    """The demo inventory (marked as demo data everywhere): the banner, and the screens the
    README shows, with realistic content."""
    from django.core.management import call_command

    from hosts.models import Host

    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    page = logged_in
    page.goto(f"{live_server.url}/")
    assert page.get_by_text("DEMO DATA").is_visible()
    shoot(page, "demo-dashboard")
    host = Host.objects.get(name="demo-host01")
    page.goto(f"{live_server.url}/hosts/{host.pk}/")
    assert page.locator("g.topo-node.bond").count() == 1
    shoot(page, "demo-host")
    page.goto(f"{live_server.url}/hosts/{host.pk}/setup-networks/")
    assert page.locator("#iface-bond0 .net-chip[data-network='storage']").is_visible()
    shoot(page, "demo-setup-networks")
    page.goto(f"{live_server.url}/networks/?sort=datacenter")
    shoot(page, "demo-networks")
