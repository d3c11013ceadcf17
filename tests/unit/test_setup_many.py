"""`hosts.services.setup_networks_many`: one change to many hosts, validated host by host
as `setup_networks` validates it, written all together, pushed by one job."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hosts import services as host_services
from hosts.choices import HostStatus, JobKind
from hosts.models import Host, HostNic, Job, NetworkAttachment
from networks import rules
from networks import services as network_services
from networks.models import Network

pytestmark = pytest.mark.django_db


@pytest.fixture
def required(cluster):
    network = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                      name="storage", vm_network=False))
    network_services.attach_network(cluster, network, required=True)
    return network


def make_hosts(cluster, count, start=1):
    hosts = []
    for index in range(start, start + count):
        host = Host.objects.create(name=f"h{index}", address=f"198.18.0.{10 + index}",
                                   cluster=cluster, status=HostStatus.UP)
        for nic in ("eth0", "eth1"):
            HostNic.objects.create(host=host, name=nic)
        management = rules.SetupRequest(attachments=(rules.AttachmentData(
            "ovirtmgmt", "eth0", rules.IpConfig("static", host.address, "24")),))
        assert host_services.setup_networks(host, management, push=False).ok
        host.refresh_from_db()
        hosts.append(host)
    return hosts


def attach(host, interface="eth1", network="storage"):
    return rules.SetupRequest(attachments=(rules.AttachmentData(
        network, interface, rules.IpConfig("static", f"198.19.2.{host.pk % 200 + 10}",
                                             "24")),))


def test_every_host_is_written_judged_and_pushed_by_one_job(cluster, required):
    hosts = make_hosts(cluster, 3)
    assert {h.status for h in hosts} == {HostStatus.NON_OPERATIONAL}  # lacking "storage"
    outcome = host_services.setup_networks_many([(h, attach(h)) for h in hosts])
    assert outcome.ok
    job = outcome.job
    assert job.kind == JobKind.SETUP_NETWORKS
    assert sorted(job.hosts.values_list("host__name", flat=True)) == ["h1", "h2", "h3"]
    for host in hosts:
        row = NetworkAttachment.objects.get(host=host, network=required)
        assert (row.nic.name, row.ipv4_address) == ("eth1", f"198.19.2.{host.pk % 200 + 10}")
        host.refresh_from_db()
        # It lacked the required network; it carries it now.
        assert host.status == HostStatus.UP, host.status_reason
    assert set(job.request["hosts"]) == {str(h.pk) for h in hosts}


def test_one_host_breaking_a_rule_writes_nothing_for_any(cluster, required):
    hosts = make_hosts(cluster, 3)
    requests = [(h, attach(h)) for h in hosts[:2]] + [(hosts[2], attach(hosts[2], "eth9"))]
    outcome = host_services.setup_networks_many(requests)
    assert not outcome.ok and outcome.job is None
    assert list(outcome.violations) == ["h3"]
    assert {v.interface for v in outcome.violations["h3"]} == {"eth9"}
    assert not NetworkAttachment.objects.filter(network=required).exists()
    assert not Job.objects.exists()
    assert set(Host.objects.values_list("status", flat=True)) == {HostStatus.NON_OPERATIONAL}


def test_reads_do_not_grow_with_the_number_of_hosts(cluster):
    """(A host whose status changes is read once more, by the audit log's record of it.)"""
    network = network_services.create_network(Network(datacenter=cluster.datacenter,
                                                      name="backup", vm_network=False))
    network_services.attach_network(cluster, network, required=False)

    def selects(hosts):
        requests = [(h, attach(h, network="backup")) for h in hosts]
        with CaptureQueriesContext(connection) as captured:
            assert host_services.setup_networks_many(requests).ok
        return sum(1 for q in captured.captured_queries
                   if q["sql"].lstrip().upper().startswith("SELECT"))

    assert selects(make_hosts(cluster, 2)) == selects(make_hosts(cluster, 6, start=3))


def test_a_host_given_twice_is_refused(cluster, required):
    [host] = make_hosts(cluster, 1)
    with pytest.raises(ValueError):
        host_services.setup_networks_many([(host, attach(host)), (host, attach(host))])
