"""Shared fixtures. Tests run on the database DATABASE_URL names (PostgreSQL in CI) and
SQLite otherwise; each test in a transaction rolled back at its end."""

import pytest


@pytest.fixture
def fast_password_hasher(settings):
    """Users made by tests hash their passwords cheaply (PBKDF2 costs ~0.2 s a user)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db, django_user_model, fast_password_hasher):
    """A user with the given model permissions (``app.codename`` strings)."""
    from django.contrib.auth.models import Permission

    def make(username="user", perms=(), superuser=False):
        user = django_user_model.objects.create_user(username=username, password="pw-" +
                                                     username + "-long-enough")
        user.is_superuser = superuser
        user.is_staff = True
        user.save()
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return user

    return make


@pytest.fixture
def admin_user(make_user):
    return make_user("root-admin", superuser=True)


@pytest.fixture
def api(admin_user):
    """A DRF client logged in as a superuser."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def datacenter(db):
    from networks import services
    from networks.models import DataCenter

    return services.create_datacenter(DataCenter(name="dc1"))


@pytest.fixture
def cluster(datacenter):
    from networks import services
    from networks.models import Cluster

    return services.create_cluster(Cluster(datacenter=datacenter, name="c1"))


# --- Inventory built directly (hosts normally come from the agent) ----------------------


@pytest.fixture
def make_host(db):
    """A host with NICs (rows as the agent would report them), status Up, carrying the
    management network on its first NIC with DHCP unless ``management=False``."""
    from hosts.choices import HostStatus
    from hosts.models import Host, HostNic, NetworkAttachment
    from networks import services as network_services
    from networks.choices import BootProtocol

    def make(cluster, name="host1", nics=("eth0", "eth1", "eth2", "eth3"), management=True,
             status=HostStatus.UP):
        host = Host.objects.create(name=name, address=f"{name}.lab.example", cluster=cluster,
                                   status=status)
        rows = HostNic.objects.bulk_create(
            HostNic(host=host, name=nic, mac=f"52:54:00:00:{host.pk % 256:02x}:{i:02x}")
            for i, nic in enumerate(nics))
        if management:
            NetworkAttachment.objects.create(
                host=host, network=network_services.management_network(cluster.datacenter),
                nic=rows[0], ipv4_boot_protocol=BootProtocol.DHCP)
        return host

    return make


@pytest.fixture
def host(cluster, make_host):
    return make_host(cluster)


@pytest.fixture
def make_network(datacenter):
    """A network of ``datacenter`` (through the service), attached to ``cluster`` when
    given."""
    from networks import services
    from networks.models import Network

    def make(name, cluster=None, required=True, roles=(), **fields):
        network = services.create_network(Network(datacenter=fields.pop("datacenter",
                                                                         datacenter),
                                                  name=name, **fields))
        if cluster is not None:
            services.attach_network(cluster, network, required=required, roles=roles)
        return network

    return make


@pytest.fixture
def world(db, make_host):
    """Two data centers, each with a cluster, a host (with a bond), networks, a VM with a
    vNIC and a job; so every filter has rows to keep and rows to drop."""
    from types import SimpleNamespace

    from hosts import services as host_services
    from hosts.choices import JobKind, VmStatus
    from hosts.models import VM, Bond, HostNic, Vnic
    from networks import services
    from networks.models import Cluster, DataCenter, Network
    from tests.factories import make_job

    w = SimpleNamespace()
    w.dc = services.create_datacenter(DataCenter(name="dc1", description="first"))
    w.dc2 = services.create_datacenter(DataCenter(name="dc2", description="second"))
    w.cluster = services.create_cluster(Cluster(datacenter=w.dc, name="c1"))
    w.cluster2 = services.create_cluster(Cluster(datacenter=w.dc2, name="c2"))
    w.mgmt = services.management_network(w.dc)
    w.mgmt2 = services.management_network(w.dc2)
    w.storage = services.create_network(Network(datacenter=w.dc, name="storage", vlan=10,
                                                vm_network=False))
    w.vmnet = services.create_network(Network(datacenter=w.dc, name="vmnet", vlan=20,
                                              label="lab"))
    services.attach_network(w.cluster, w.vmnet, required=False)
    w.host = make_host(w.cluster, "h1")
    w.host2 = make_host(w.cluster2, "h2")
    w.bond = Bond.objects.create(host=w.host, name="bond0", options="miimon=100")
    HostNic.objects.filter(host=w.host, name__in=["eth2", "eth3"]).update(bond=w.bond)
    w.bond2 = Bond.objects.create(host=w.host2, name="bond1", mode=4)
    HostNic.objects.filter(host=w.host2, name__in=["eth2", "eth3"]).update(bond=w.bond2)
    w.vm = VM.objects.create(name="vm1", cluster=w.cluster, host=w.host, status=VmStatus.UP)
    w.vm2 = VM.objects.create(name="vm2", cluster=w.cluster2)
    w.vnic = host_services.save_vnic(
        Vnic(vm=w.vm, name="nic1", profile=w.mgmt.vnic_profiles.get()))
    w.vnic2 = host_services.save_vnic(Vnic(vm=w.vm2, name="nic1"))
    w.job = make_job(w.host, JobKind.SETUP_NETWORKS)
    w.job2 = make_job(w.host2, JobKind.REFRESH)
    return w
