"""What keeps the pages fast at 2,000 hosts (bench/web.py), and still correct: counts by
subquery, a search select instead of a select of every host, the cluster page's network
status in one query and its first hosts only, URLs reversed once per list."""

import re

import pytest
from django.urls import reverse

from hosts.choices import HostStatus


def options(html: str, name: str) -> list[tuple[str, str]]:
    """(value, label) of every option of the select named ``name``."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select {name}"
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))


@pytest.fixture
def fleet(cluster, make_host):
    """12 hosts of one cluster; a VM on each of the first three."""
    from hosts.models import VM

    hosts = [make_host(cluster, name=f"fleet{i:02d}") for i in range(12)]
    for i, host in enumerate(hosts[:3]):
        VM.objects.create(name=f"vm-{i}", cluster=cluster, host=host)
    return hosts


def test_vm_list_host_filter_lists_no_hosts_until_searched(fleet, admin_client):
    page = admin_client.get(reverse("hosts:vm_list")).content.decode()
    assert options(page, "host") == [("", "Any")]
    select = re.search(r'<select name="host"[^>]*>', page).group(0)
    assert f'data-search-url="{reverse("api:host-list")}"' in select
    assert "js/search_select.js" in page
    assert options(page, "cluster")[1:]  # small tables keep their plain select


def test_vm_list_host_filter_still_filters(fleet, admin_client):
    host = fleet[1]
    response = admin_client.get(reverse("hosts:vm_list"), {"host": host.pk})
    page = response.content.decode()
    assert [vm.name for vm in response.context["page"].object_list] == ["vm-1"]
    assert options(page, "host") == [("", "Any"), (str(host.pk), host.name)]
    assert f'<option value="{host.pk}" selected>' in page
    # A host that does not exist is the filter's error, not a server error.
    response = admin_client.get(reverse("hosts:vm_list"), {"host": 10**30})
    assert response.status_code == 200
    assert not response.context["page"].object_list


def test_search_select_finds_hosts_through_the_api(fleet, admin_client):
    """What the script asks: the first matches of ?q=, narrowed by the cluster."""
    response = admin_client.get(reverse("api:host-list"),
                                {"q": "fleet1", "limit": 25, "cluster": fleet[0].cluster_id})
    assert [row["name"] for row in response.json()["results"]] == ["fleet10", "fleet11"]


def test_vm_form_host_is_a_search_select(fleet, admin_client):
    from hosts.models import VM

    url = reverse("hosts:vm_add")
    page = admin_client.get(url).content.decode()
    assert options(page, "host") == [("", "---------")]
    assert 'data-search-depends="cluster"' in page and "js/search_select.js" in page
    page = admin_client.get(url, {"host": fleet[4].pk}).content.decode()
    assert options(page, "host")[1:] == [(str(fleet[4].pk), "fleet04")]
    response = admin_client.post(url, {"name": "vm-new", "cluster": fleet[4].cluster_id,
                                       "host": fleet[4].pk, "status": "down"})
    assert response.status_code == 302
    assert VM.objects.get(name="vm-new").host == fleet[4]
    vm = VM.objects.get(name="vm-0")
    page = admin_client.get(reverse("hosts:vm_edit", args=[vm.pk])).content.decode()
    assert options(page, "host")[1:] == [(str(fleet[0].pk), "fleet00")]


def test_list_counts_by_subquery(inventory, make_host, admin_client):
    """Each count column counts its own rows (no join multiplies another's), and sorts."""
    from hosts import services as host_services
    from hosts.choices import JobKind
    from hosts.models import Vnic

    second = make_host(inventory.cluster, name="h2")
    host_services.save_vnic(Vnic(vm=inventory.vm, name="nic2", profile=inventory.vnic.profile))
    job = host_services.queue_job(JobKind.REFRESH, [inventory.host, second])

    def rows(name, **params):
        response = admin_client.get(reverse(name), params)
        return {str(obj): obj for obj in response.context["page"].object_list}

    hosts = rows("hosts:host_list")
    assert hosts["host1"].out_of_sync_count == 1 and hosts["h2"].out_of_sync_count == 0
    assert list(rows("hosts:host_list", sort="-out_of_sync_count")) == ["host1", "h2"]
    assert rows("hosts:vm_list")["vm1"].vnic_count == 2
    assert rows("hosts:job_list")[str(job)].host_count == 2
    assert rows("hosts:job_list")[str(inventory.job)].host_count == 1
    datacenter = rows("networks:datacenter_list")["dc1"]
    assert (datacenter.cluster_count, datacenter.network_count) == (1, 3)
    cluster = rows("networks:cluster_list")["c1"]
    assert (cluster.host_count, cluster.network_count) == (2, 3)
    networks = rows("networks:network_list", cluster=inventory.cluster.pk)
    assert networks["vmnet"].cluster_count == 1
    dashboard = admin_client.get(reverse("dashboard")).context
    assert {j.pk: j.host_count for j in dashboard["running_jobs"]} == {
        job.pk: 2, inventory.job.pk: 1}


def test_cluster_page_network_status_matches_the_service(inventory, make_host, make_network,
                                                         admin_client):
    """The page shows what `hosts.services.cluster_network_status` judges."""
    from hosts.models import Host
    from hosts.services import cluster_network_status

    cluster = inventory.cluster
    make_network("backup", cluster, required=True)  # no host carries it
    make_host(cluster, name="down1", status=HostStatus.MAINTENANCE)
    # Requiring it made host1 NonOperational; an Up host lacking it is what the page flags.
    Host.objects.filter(pk=inventory.host.pk).update(status=HostStatus.UP)
    response = admin_client.get(reverse("networks:cluster", args=[cluster.pk]))
    shown = {row.network.name: row.operational for row in response.context["assignments"]}
    assert shown == {row.network.name: row.operational
                     for row in cluster_network_status(cluster)}
    assert shown["backup"] is False and shown["ovirtmgmt"] is True
    assert shown["storage"] is True  # optional: operational whatever the hosts carry


def test_cluster_page_shows_the_first_hosts_and_links_to_all(cluster, make_host,
                                                             admin_client, settings):
    from networks.views import ClusterView

    for i in range(ClusterView.hosts_shown + 3):
        make_host(cluster, name=f"n{i:02d}")
    response = admin_client.get(reverse("networks:cluster", args=[cluster.pk]))
    page = response.content.decode()
    assert [h.name for h in response.context["hosts"]] == [
        f"n{i:02d}" for i in range(ClusterView.hosts_shown)]
    total = ClusterView.hosts_shown + 3
    assert f'href="{reverse("hosts:host_list")}?cluster={cluster.pk}">All {total} hosts' in page
    assert f"n{ClusterView.hosts_shown:02d}" not in page


def test_network_page_shows_the_first_hosts_and_links_to_all(cluster, make_host,
                                                             make_network, admin_client):
    from hosts.models import NetworkAttachment
    from networks.views import NetworkView

    storage = make_network("storage", cluster, required=False, vm_network=False)
    carrying = [make_host(cluster, name=f"n{i:02d}") for i in range(NetworkView.hosts_shown + 3)]
    make_host(cluster, name="other")  # carries only the management network
    for host in carrying:
        NetworkAttachment.objects.create(host=host, network=storage,
                                         nic=host.nics.get(name="eth1"))
    response = admin_client.get(reverse("networks:network", args=[storage.pk]))
    page = response.content.decode()
    assert [a.host.name for a in response.context["attachments"]] == [
        f"n{i:02d}" for i in range(NetworkView.hosts_shown)]
    total = NetworkView.hosts_shown + 3
    link = f"{reverse('hosts:host_list')}?network={storage.pk}"
    assert f'href="{link}">All {total} hosts carrying storage' in page
    listed = admin_client.get(link)
    assert sorted(h.name for h in listed.context["page"].object_list) == [
        h.name for h in carrying]


def test_pk_url_is_reverse(inventory):
    from django.urls import set_script_prefix

    from portal.views import object_url, pk_url

    for name, pk in [("hosts:host", inventory.host.pk), ("networks:cluster", 7),
                     ("hosts:vm_edit", 12), ("api:host-detail", 3)]:
        assert pk_url(name, pk) == reverse(name, args=[pk])
    assert object_url(inventory.vm) == reverse("hosts:vm", args=[inventory.vm.pk])
    try:
        set_script_prefix("/portal/")
        assert pk_url("hosts:host", 5) == "/portal/hosts/5/" == reverse("hosts:host", args=[5])
    finally:
        set_script_prefix("/")
    assert pk_url("hosts:host", 5) == "/hosts/5/"


def test_api_urls_and_job_hosts(inventory, api):
    from hosts import services as host_services
    from hosts.choices import JobKind

    host_services.queue_job(JobKind.REFRESH, [inventory.host])
    vm = api.get(reverse("api:vm-list")).json()["results"][0]
    assert vm["url"] == "http://testserver" + reverse("api:vm-detail", args=[vm["id"]])
    jobs = api.get(reverse("api:job-list")).json()["results"]
    assert jobs[0]["url"] == "http://testserver" + reverse("api:job-detail",
                                                           args=[jobs[0]["id"]])
    assert [(e["host"], e["host_name"]) for e in jobs[0]["hosts"]] == [
        (inventory.host.pk, "host1")]
    assert jobs[0]["created_by"] is None and jobs[1]["created_by"] == "root-admin"


@pytest.mark.parametrize("name", ["api:job-list", "api:vm-list", "api:vnic-list",
                                  "api:hostnic-list", "api:networkattachment-list"])
def test_api_lists_query_count_does_not_grow(name, inventory, make_host, api,
                                             django_assert_num_queries):
    """Trimmed joins must not turn into one query per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hosts import services as host_services
    from hosts.choices import JobKind
    from hosts.models import VM, Vnic

    with CaptureQueriesContext(connection) as few:
        api.get(reverse(name))
    for i in range(6):
        host = make_host(inventory.cluster, name=f"more{i}")
        vm = VM.objects.create(name=f"vm-more{i}", cluster=inventory.cluster, host=host)
        Vnic.objects.create(vm=vm, name="nic1", mac=f"56:6f:00:00:00:{i:02x}",
                            profile=inventory.vnic.profile)
        host_services.queue_job(JobKind.REFRESH, [host, inventory.host] if i % 2 else [host])
    with django_assert_num_queries(len(few)):
        assert len(api.get(reverse(name)).json()["results"]) > 5
