"""Fixtures of the view tests: a small inventory built through the services (hosts as rows,
the way the agent would have reported them), and logged-in clients."""

from types import SimpleNamespace

import pytest


@pytest.fixture
def inventory(cluster, make_host, make_network, admin_user):
    """One of everything the pages show: a data center, a cluster, two networks, a host with
    an out-of-sync attachment, a VM with a vNIC, and a job with a log line."""
    from hosts import services as host_services
    from hosts.choices import JobKind, VmStatus
    from hosts.models import VM, JobLog, NetworkAttachment, Vnic
    from networks.models import VnicProfile

    storage = make_network("storage", cluster, required=False, vlan=200, vm_network=False)
    vmnet = make_network("vmnet", cluster, required=False, vlan=100)
    host = make_host(cluster)
    NetworkAttachment.objects.create(host=host, network=vmnet, nic=host.nics.get(name="eth1"),
                                     in_sync=False, out_of_sync=[
                                         {"property": "mtu", "wanted": 1500, "reported": 9000}])
    vm = VM.objects.create(name="vm1", cluster=cluster, host=host, status=VmStatus.UP)
    vnic = host_services.save_vnic(Vnic(vm=vm, name="nic1",
                                        profile=VnicProfile.objects.get(network=vmnet)))
    job = host_services.queue_job(JobKind.SYNC, [host], user=admin_user, description="Sync h1")
    JobLog.objects.create(job=job, host=host, message="connected")
    return SimpleNamespace(datacenter=cluster.datacenter, cluster=cluster, host=host,
                           storage=storage, vmnet=vmnet, vm=vm, vnic=vnic, job=job,
                           attachment=host.attachments.get(network=vmnet))


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def login(client, make_user):
    """Log ``client`` in as a new user with the given permissions."""

    def make(*perms, username="operator"):
        user = make_user(username, perms=perms)
        client.force_login(user)
        return client

    return make
