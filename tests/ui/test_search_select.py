"""Search selects in a real browser (headless Chromium, see conftest.py): the VM list's host
filter and the VM form's host field list no hosts until the operator searches, then offer
the API's matches, and the choice filters or saves as a plain select did."""

from __future__ import annotations

import re


def _fleet(lab):
    from hosts.choices import HostStatus
    from hosts.models import VM, Host

    hosts = {lab.host.name: lab.host}
    for i in range(30):
        hosts[f"rack{i:02d}"] = Host.objects.create(
            name=f"rack{i:02d}", address=f"198.18.1.{i + 1}", cluster=lab.cluster,
            status=HostStatus.UP)
    for name in ("host-a", "rack07", "rack08"):
        VM.objects.create(name=f"vm-on-{name}", cluster=lab.cluster, host=hosts[name])
    return hosts


def test_vm_list_host_filter_by_search(logged_in, live_server, lab):
    hosts = _fleet(lab)
    page = logged_in
    page.goto(f"{live_server.url}/vms/")
    host_select = page.locator("select[name='host']")
    assert host_select.locator("option").count() == 1  # "Any": no host rendered
    page.get_by_label("Search hosts").fill("rack07")
    host_select.locator("option", has_text="rack07").wait_for(state="attached")
    assert host_select.locator("option").all_inner_texts() == ["Any", "rack07"]
    host_select.select_option(label="rack07")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(rf"host={hosts['rack07'].pk}"))
    rows = page.locator("table.object-list tbody tr")
    assert rows.count() == 1 and "vm-on-rack07" in rows.inner_text()
    # The chosen host stays chosen on the filtered page, without any search.
    assert page.locator("select[name='host'] option:checked").inner_text() == "rack07"


def test_host_select_offers_the_first_hosts_on_focus(logged_in, live_server, lab):
    _fleet(lab)
    page = logged_in
    page.goto(f"{live_server.url}/vms/")
    host_select = page.locator("select[name='host']")
    host_select.focus()
    host_select.locator("option", has_text="host-a").wait_for(state="attached")
    assert host_select.locator("option").count() == 1 + 25  # the API's first page of 25
    assert "First 25 matches" in page.locator("select[name='host'] + .form-text").inner_text()


def test_vm_form_host_search_narrowed_by_cluster(logged_in, live_server, lab):
    from hosts.choices import HostStatus
    from hosts.models import VM, Host
    from networks import services
    from networks.models import Cluster

    hosts = _fleet(lab)
    other = services.create_cluster(Cluster(datacenter=lab.dc, name="cluster-b"))
    Host.objects.create(name="rack-other", address="198.18.2.1", cluster=other,
                        status=HostStatus.UP)
    page = logged_in
    page.goto(f"{live_server.url}/vms/add/")
    page.get_by_label("Name").fill("vm-new")
    page.get_by_label("Cluster").select_option(label="cluster-a")
    page.get_by_label("Search hosts").fill("rack")
    host_select = page.locator("select[name='host']")
    host_select.locator("option", has_text="rack00").wait_for(state="attached")
    labels = host_select.locator("option").all_inner_texts()
    assert "rack-other" not in labels  # another cluster's host is not offered
    host_select.select_option(label="rack03")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/vms/\d+/$"))
    assert VM.objects.get(name="vm-new").host == hosts["rack03"]
