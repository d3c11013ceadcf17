"""Standard API tests of every endpoint, from one declaration per endpoint.

Each `Endpoint` names its route, its model, how to make one more row, valid create and
update data and its filters; the tests below give every endpoint list (with the pagination
shape and a query budget), retrieve, create, update, delete, filters and permissions.
Per-endpoint behaviour lives in test_behaviour.py and test_setup_networks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from rest_framework.test import APIClient

from hosts import services as host_services
from hosts.choices import HostStatus, JobKind, VmStatus
from hosts.models import VM, Bond, Host, HostNic, Job, NetworkAttachment, Vnic
from networks import services
from networks.choices import BootProtocol
from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile
from portal.models import AuditEntry
from tests.factories import make_job


@dataclass
class Endpoint:
    """One API route and what its standard tests need.

    ``make(world, i)`` adds the i-th extra row; ``create`` returns valid POST data and
    ``update`` valid PATCH data (a dict of field -> new value, checked on the row after);
    ``filters`` maps a query parameter to (value from the world, predicate on a row that
    the filtered list must hold exactly); ``budget`` is the query budget of a list page.
    """

    route: str
    model: type
    make: Callable
    create: Callable | None = None
    update: Callable | None = None
    filters: dict[str, tuple[Callable, Callable]] = field(default_factory=dict)
    budget: int = 2
    read_only: bool = False

    def __str__(self) -> str:
        return self.route

    @property
    def perm_prefix(self) -> str:
        return f"{self.model._meta.app_label}."

    def perm(self, action: str) -> str:
        return f"{self.perm_prefix}{action}_{self.model._meta.model_name}"

    def list_url(self) -> str:
        return f"/api/{self.route}/"

    def detail_url(self, pk) -> str:
        return f"/api/{self.route}/{pk}/"


def _make_nic(w, i):
    return HostNic.objects.create(host=w.host, name=f"ens{i}")


def _make_attachment(w, i):
    network = services.create_network(Network(datacenter=w.dc, name=f"att{i}", vlan=200 + i,
                                               vm_network=False))
    services.attach_network(w.cluster, network, required=False)
    return NetworkAttachment.objects.create(host=w.host, network=network,
                                            nic=w.host.nics.get(name="eth1"))


def _make_bond(w, i):
    bond = Bond.objects.create(host=w.host2, name=f"bond{10 + i}")
    HostNic.objects.bulk_create(HostNic(host=w.host2, name=f"p{i}n{s}", bond=bond)
                                for s in range(2))
    return bond


def _make_vnic(w, i):
    return host_services.save_vnic(Vnic(vm=w.vm, name=f"vnic{i}",
                                        profile=w.mgmt.vnic_profiles.get()))


def _make_job(w, i):
    return make_job(w.host, JobKind.SYNC, w.host2)  # two entries to list per job


ENDPOINTS = [
    Endpoint(
        "datacenters", DataCenter,
        make=lambda w, i: services.create_datacenter(DataCenter(name=f"extra{i}")),
        create=lambda w: {"name": "dc-new", "description": "made by the API"},
        update=lambda w: {"description": "changed"},
        filters={"name": (lambda w: "dc1", lambda o: o.name == "dc1"),
                 "q": (lambda w: "SECOND", lambda o: "second" in o.description)},
    ),
    Endpoint(
        "clusters", Cluster,
        make=lambda w, i: services.create_cluster(Cluster(datacenter=w.dc, name=f"x{i}")),
        create=lambda w: {"datacenter": w.dc.pk, "name": "c-new"},
        update=lambda w: {"description": "changed", "mac_pool_end": "56:6f:00:00:0f:ff"},
        filters={"datacenter": (lambda w: w.dc2.pk, lambda o: o.datacenter.name == "dc2"),
                 "name": (lambda w: "c1", lambda o: o.name == "c1")},
    ),
    Endpoint(
        "networks", Network,
        make=lambda w, i: services.create_network(Network(datacenter=w.dc, name=f"n{i}",
                                                          vlan=100 + i)),
        create=lambda w: {"datacenter": w.dc.pk, "name": "backup", "vlan": 30, "mtu": 9000,
                          "vm_network": False, "dns_servers": ["198.18.0.53"]},
        update=lambda w: {"description": "changed", "mtu": 1400},
        filters={"datacenter": (lambda w: w.dc2.pk, lambda o: o.datacenter.name == "dc2"),
                 "cluster": (lambda w: w.cluster.pk,
                             lambda o: o.name in ("ovirtmgmt", "vmnet")
                             and o.datacenter.name == "dc1"),
                 "name": (lambda w: "storage", lambda o: o.name == "storage"),
                 "q": (lambda w: "LAB", lambda o: o.label == "lab"),
                 "vm_network": (lambda w: "false", lambda o: not o.vm_network)},
    ),
    Endpoint(
        "cluster-networks", ClusterNetwork,
        make=lambda w, i: services.attach_network(
            w.cluster, services.create_network(Network(datacenter=w.dc, name=f"cn{i}")),
            required=False),
        create=lambda w: {"cluster": w.cluster.pk, "network": w.storage.pk,
                          "required": False},
        update=lambda w: {"required": False, "is_migration": True},
        filters={"cluster": (lambda w: w.cluster2.pk, lambda o: o.cluster.name == "c2"),
                 "network": (lambda w: w.vmnet.pk, lambda o: o.network.name == "vmnet"),
                 "is_management": (lambda w: "true", lambda o: o.is_management)},
    ),
    Endpoint(
        "vnic-profiles", VnicProfile,
        make=lambda w, i: VnicProfile.objects.create(network=w.vmnet, name=f"p{i}"),
        create=lambda w: {"network": w.vmnet.pk, "name": "vmnet-fast"},
        update=lambda w: {"description": "changed", "name": "renamed"},
        filters={"network": (lambda w: w.vmnet.pk, lambda o: o.network.name == "vmnet"),
                 "network__datacenter": (lambda w: w.dc2.pk,
                                         lambda o: o.network.datacenter.name == "dc2"),
                 "q": (lambda w: "VMNET", lambda o: "vmnet" in o.name)},
    ),
    Endpoint(
        "hosts", Host,
        make=lambda w, i: Host.objects.create(name=f"hx{i}", address=f"198.18.1.{i}",
                                              cluster=w.cluster),
        create=lambda w: {"name": "h-new", "address": "198.18.0.10", "cluster": w.cluster.pk},
        update=lambda w: {"address": "198.18.0.11", "ssh_port": 2222},
        filters={"cluster": (lambda w: w.cluster2.pk, lambda o: o.cluster.name == "c2"),
                 "datacenter": (lambda w: w.dc.pk, lambda o: o.cluster.datacenter.name == "dc1"),
                 "name": (lambda w: "h2", lambda o: o.name == "h2"),
                 "q": (lambda w: "H1.LAB", lambda o: o.address == "h1.lab.example")},
    ),
    Endpoint(
        "host-nics", HostNic, make=_make_nic, read_only=True,
        filters={"host": (lambda w: w.host2.pk, lambda o: o.host.name == "h2"),
                 "bond": (lambda w: w.bond.pk, lambda o: o.bond_id is not None
                          and o.bond.name == "bond0"),
                 "name": (lambda w: "eth1", lambda o: o.name == "eth1")},
    ),
    Endpoint(
        "bonds", Bond, make=_make_bond, read_only=True, budget=3,
        filters={"host": (lambda w: w.host.pk, lambda o: o.host.name == "h1")},
    ),
    Endpoint(
        "attachments", NetworkAttachment, make=_make_attachment, read_only=True,
        filters={"host": (lambda w: w.host2.pk, lambda o: o.host.name == "h2"),
                 "network": (lambda w: w.mgmt.pk, lambda o: o.network.datacenter.name == "dc1"
                             and o.network.name == "ovirtmgmt")},
    ),
    Endpoint(
        "vms", VM,
        make=lambda w, i: VM.objects.create(name=f"vmx{i}", cluster=w.cluster, host=w.host),
        create=lambda w: {"name": "vm-new", "cluster": w.cluster.pk, "host": w.host.pk},
        update=lambda w: {"status": VmStatus.UP, "host": None},
        filters={"cluster": (lambda w: w.cluster2.pk, lambda o: o.cluster.name == "c2"),
                 "host": (lambda w: w.host.pk, lambda o: o.host is not None
                          and o.host.name == "h1"),
                 "name": (lambda w: "vm2", lambda o: o.name == "vm2")},
    ),
    Endpoint(
        "vnics", Vnic, make=_make_vnic,
        create=lambda w: {"vm": w.vm.pk, "name": "nic2",
                          "profile": w.mgmt.vnic_profiles.get().pk},
        update=lambda w: {"linked": False, "type": "e1000"},
        filters={"vm": (lambda w: w.vm2.pk, lambda o: o.vm.name == "vm2"),
                 "profile__network": (lambda w: w.mgmt.pk, lambda o: o.profile_id is not None)},
    ),
    Endpoint(
        "jobs", Job, make=_make_job, read_only=True, budget=3,
        filters={"kind": (lambda w: JobKind.REFRESH, lambda o: o.kind == JobKind.REFRESH),
                 "host": (lambda w: w.host2.pk,
                          lambda o: o.hosts.filter(host__name="h2").exists())},
    ),
]


def _make_audit_entry(w, i):
    from django.contrib.contenttypes.models import ContentType

    return AuditEntry.objects.create(
        source="ui", action="update", content_type=ContentType.objects.get_for_model(VM),
        object_id=w.vm2.pk, object_repr=str(w.vm2), before={"status": "down"},
        after={"status": "up"})


ENDPOINTS.append(Endpoint(  # the audit log (portal/audit.py); its entries come from changes
    "audit", AuditEntry, make=_make_audit_entry, read_only=True,
    filters={"object_type": (lambda w: "hosts.vm", lambda o: o.content_type.model == "vm"),
             "object_id": (lambda w: w.vm2.pk, lambda o: o.object_id == w_vm2_pk(o))},
))


def w_vm2_pk(_entry):
    return VM.objects.get(name="vm2").pk


WRITABLE = [e for e in ENDPOINTS if not e.read_only]
READ_ONLY = [e for e in ENDPOINTS if e.read_only]


def params(endpoints):
    return pytest.mark.parametrize("endpoint", endpoints, ids=str)


def last_row(endpoint, world):
    return endpoint.make(world, 99)


def client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


# --- Reads ------------------------------------------------------------------------------


@params(ENDPOINTS)
def test_list_has_pagination_shape_and_stays_within_query_budget(
        endpoint, api, world, django_assert_max_num_queries):
    for i in range(10):
        endpoint.make(world, i)
    total = endpoint.model.objects.count()
    assert total >= 10
    with django_assert_max_num_queries(endpoint.budget):
        response = api.get(endpoint.list_url(), {"limit": 100})
    assert response.status_code == 200, response.data
    assert set(response.data) == {"count", "next", "previous", "results"}
    assert response.data["count"] == total
    assert len(response.data["results"]) == total
    assert {row["id"] for row in response.data["results"]} == set(
        endpoint.model.objects.values_list("pk", flat=True))


@params(ENDPOINTS)
def test_list_pages(endpoint, api, world):
    for i in range(3):
        endpoint.make(world, i)
    total = endpoint.model.objects.count()
    first = api.get(endpoint.list_url(), {"limit": 2}).data
    assert first["count"] == total and len(first["results"]) == 2
    assert first["previous"] is None and "offset=2" in first["next"]
    second = api.get(first["next"]).data
    assert second["previous"] is not None
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


@params(ENDPOINTS)
def test_retrieve(endpoint, api, world):
    obj = last_row(endpoint, world)
    response = api.get(endpoint.detail_url(obj.pk))
    assert response.status_code == 200, response.data
    assert response.data["id"] == obj.pk
    assert response.data["url"].endswith(endpoint.detail_url(obj.pk))


@params(ENDPOINTS)
def test_retrieve_unknown_is_404_in_the_error_shape(endpoint, api, world):
    response = api.get(endpoint.detail_url(987654))
    assert response.status_code == 404
    assert response.data["code"] == "not_found" and response.data["errors"] == []


def _filter_cases():
    for endpoint in ENDPOINTS:
        for name in endpoint.filters:
            yield pytest.param(endpoint, name, id=f"{endpoint.route}?{name}")


@pytest.mark.parametrize(("endpoint", "name"), list(_filter_cases()))
def test_filter(endpoint, name, api, world):
    value, keep = endpoint.filters[name]
    expected = {o.pk for o in endpoint.model.objects.all() if keep(o)}
    total = endpoint.model.objects.count()
    assert 0 < len(expected) < total, "the world must give the filter rows to drop"
    response = api.get(endpoint.list_url(), {name: value(world), "limit": 1000})
    assert response.status_code == 200, response.data
    assert {row["id"] for row in response.data["results"]} == expected


# --- Writes -----------------------------------------------------------------------------


@params(WRITABLE)
def test_create(endpoint, api, world):
    data = endpoint.create(world)
    before = endpoint.model.objects.count()
    response = api.post(endpoint.list_url(), data, format="json")
    assert response.status_code == 201, response.data
    assert endpoint.model.objects.count() == before + 1
    obj = endpoint.model.objects.get(pk=response.data["id"])
    for key, value in data.items():
        assert response.data[key] == value
        stored = getattr(obj, f"{key}_id" if hasattr(obj, f"{key}_id") else key)
        assert stored == value


@params(WRITABLE)
def test_update(endpoint, api, world):
    obj = last_row(endpoint, world)
    data = endpoint.update(world)
    response = api.patch(endpoint.detail_url(obj.pk), data, format="json")
    assert response.status_code == 200, response.data
    obj.refresh_from_db()
    for key, value in data.items():
        assert response.data[key] == value
        stored = getattr(obj, f"{key}_id" if hasattr(obj, f"{key}_id") else key)
        assert stored == value


@params(WRITABLE)
def test_delete(endpoint, api, world):
    obj = last_row(endpoint, world)
    response = api.delete(endpoint.detail_url(obj.pk))
    assert response.status_code == 204, getattr(response, "data", None)
    assert not endpoint.model.objects.filter(pk=obj.pk).exists()


@params(READ_ONLY)
def test_read_only_endpoint_refuses_writes(endpoint, api, world):
    obj = last_row(endpoint, world)
    before = endpoint.model.objects.count()
    assert api.post(endpoint.list_url(), {}, format="json").status_code == 405
    assert api.patch(endpoint.detail_url(obj.pk), {}, format="json").status_code == 405
    assert api.delete(endpoint.detail_url(obj.pk)).status_code == 405
    assert endpoint.model.objects.count() == before


# --- Permissions ------------------------------------------------------------------------


@params(ENDPOINTS)
def test_anonymous_is_refused(endpoint, world):
    obj = last_row(endpoint, world)
    client = client_for(None)
    for response in (client.get(endpoint.list_url()), client.get(endpoint.detail_url(obj.pk)),
                     client.post(endpoint.list_url(), {}, format="json")):
        assert response.status_code in (401, 403)
        assert "results" not in response.data and "id" not in response.data


@params(ENDPOINTS)
def test_without_view_permission_reads_are_refused(endpoint, world, make_user):
    obj = last_row(endpoint, world)
    # Every permission of the model except view: reads still need view.
    perms = [endpoint.perm(a) for a in ("add", "change", "delete")]
    client = client_for(make_user("noview", perms))
    assert client.get(endpoint.list_url()).status_code == 403
    assert client.get(endpoint.detail_url(obj.pk)).status_code == 403


@params(ENDPOINTS)
def test_view_permission_reads(endpoint, world, make_user):
    obj = last_row(endpoint, world)
    client = client_for(make_user("viewer", [endpoint.perm("view")]))
    listed = client.get(endpoint.list_url())
    assert listed.status_code == 200
    assert listed.data["count"] == endpoint.model.objects.count()
    assert client.get(endpoint.detail_url(obj.pk)).status_code == 200


@params(WRITABLE)
def test_view_permission_cannot_write(endpoint, world, make_user):
    obj = last_row(endpoint, world)
    before = endpoint.model.objects.count()
    client = client_for(make_user("viewer", [endpoint.perm("view")]))
    assert client.post(endpoint.list_url(), endpoint.create(world),
                       format="json").status_code == 403
    assert client.patch(endpoint.detail_url(obj.pk), endpoint.update(world),
                        format="json").status_code == 403
    assert client.delete(endpoint.detail_url(obj.pk)).status_code == 403
    assert endpoint.model.objects.count() == before


@params(WRITABLE)
def test_write_permissions_allow_writes(endpoint, world, make_user):
    """The add/change/delete permissions (with view) are enough: no superuser needed."""
    obj = last_row(endpoint, world)
    client = client_for(make_user(
        "editor", [endpoint.perm(a) for a in ("view", "add", "change", "delete")]))
    assert client.post(endpoint.list_url(), endpoint.create(world),
                       format="json").status_code == 201
    assert client.patch(endpoint.detail_url(obj.pk), endpoint.update(world),
                        format="json").status_code == 200
    assert client.delete(endpoint.detail_url(obj.pk)).status_code == 204


def test_every_routed_endpoint_is_declared(api):
    """A new route gets its standard tests: the declarations cover the router."""
    routes = {k for k in api.get("/api/").data}
    assert routes == {e.route for e in ENDPOINTS}


def test_world_host_statuses(world):
    """The world's hosts carry the management network and stay Up after a refresh."""
    for host in (world.host, world.host2):
        host_services.refresh_host_status(host, reachable=True)
        host.refresh_from_db()
        assert host.status == HostStatus.UP, host.status_reason
    assert NetworkAttachment.objects.get(host=world.host).ipv4_boot_protocol == \
        BootProtocol.DHCP
