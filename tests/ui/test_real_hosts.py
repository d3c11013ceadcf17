"""The operator's whole path in a real browser against real hosts: headless Chromium
(Playwright) on the live server, a real Celery worker on Redis, and a lab host (a network
namespace with its own sshd) whose kernel the agent changes.

Log in; create a network; require it in the cluster and see the host turn NonOperational;
attach it on the setup page, preview (the agent's exact commands), apply, watch the job
page end committed and the host come Up; change the host by hand, see the out-of-sync flag
with reported against wanted, and sync it.
"""

from __future__ import annotations

import re

import pytest

from tests import lab as lab_module
from tests.integration.conftest import _missing_prerequisite, celery_worker, wait_job  # noqa: F401
from tests.probes import unavailable
from tests.ui.conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.lab]


@pytest.fixture(scope="module")
def hosts_lab():
    reason = _missing_prerequisite()
    if reason:
        unavailable(reason, "NETPORTAL_REQUIRE_LAB")
    with lab_module.Lab(n=1, nics=3) as built:
        yield built


@pytest.fixture
def real_host(hosts_lab, celery_worker, transactional_db):  # noqa: F811 - the fixture
    from hosts import services as host_services
    from hosts import ssh
    from hosts.models import Host, Job
    from networks import services
    from networks.models import Cluster, DataCenter

    dc = services.create_datacenter(DataCenter(name="dc-real"))
    cluster = services.create_cluster(Cluster(datacenter=dc, name="cluster-real"))
    hosts_lab.authorize(ssh.public_key_line())
    lab_host = hosts_lab.hosts[0]
    host = host_services.create_host(Host(name="real-a", address=lab_host.address,
                                          cluster=cluster,
                                          expected_fingerprint=lab_host.fingerprint))
    wait_job(Job.objects.filter(hosts__host=host).latest("pk"))
    host.refresh_from_db()
    assert host.status == "up", host.status_reason
    return host


def _wait_job_page_final(page) -> str:
    panel = page.locator("#job-progress")
    panel.wait_for()
    page.wait_for_function(
        "() => ['committed', 'partial', 'failed'].includes("
        "document.querySelector('#job-progress')?.dataset.jobStatus)", timeout=60_000)
    return page.locator("#job-progress").get_attribute("data-job-status")


def test_operator_sets_up_a_real_host_and_repairs_a_hand_change(logged_in, live_server,
                                                                hosts_lab, real_host):
    page = logged_in
    base = live_server.url
    # A new non-VM network, required in the cluster: the host lacks it.
    page.goto(f"{base}/networks/add/")
    page.get_by_label("Data center").select_option(label="dc-real")
    page.get_by_label("Name").fill("storage")
    page.get_by_label("MTU").fill("9000")
    page.get_by_label("VM network").uncheck()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/networks/\d+/$"))
    page.goto(f"{base}/clusters/{real_host.cluster_id}/networks/")
    row = page.locator("tr[data-network='storage']")
    row.get_by_label("Assign storage").check()
    row.get_by_label("storage is required").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/clusters/{real_host.cluster_id}/$"))
    page.goto(f"{base}/hosts/{real_host.pk}/")
    assert page.get_by_text("the following networks are missing on host: 'storage'").is_visible()

    # Attach it by drag and drop; the preview shows the agent's exact commands.
    page.goto(f"{base}/hosts/{real_host.pk}/setup-networks/")
    page.locator("#unattached .net-chip[data-network='storage']").drag_to(
        page.locator("#iface-eth2 .drop-zone"))
    page.get_by_role("button", name="Preview").click()
    commands = page.locator("#preview pre.preview-commands")
    commands.wait_for(timeout=30_000)
    assert "link set eth2 mtu 9000" in commands.inner_text(), commands.inner_text()
    shoot(page, "real-preview-commands")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    assert _wait_job_page_final(page) == "committed"
    shoot(page, "real-job-committed")
    page.goto(f"{base}/hosts/{real_host.pk}/")
    assert page.locator("[data-host-status]").first.inner_text() == "Up"

    # A hand change on the host shows as out of sync; Sync repairs it.
    lab_module.run(["ip", "-n", hosts_lab.hosts[0].namespace, "link", "set", "eth2",
                    "mtu", "1400"])
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    assert _wait_job_page_final(page) == "committed"
    page.goto(f"{base}/hosts/{real_host.pk}/")
    table = page.get_by_role("table", name="Differences of storage")
    assert "1400" in table.inner_text() and "9000" in table.inner_text()
    shoot(page, "real-out-of-sync")
    page.get_by_role("button", name="Sync all networks").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    assert _wait_job_page_final(page) == "committed"
    page.goto(f"{base}/hosts/{real_host.pk}/")
    assert page.get_by_role("table", name="Differences of storage").count() == 0
    assert hosts_lab.link(hosts_lab.hosts[0], "eth2")["mtu"] == 9000
