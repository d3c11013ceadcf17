"""The Django admin, through Django's test client as a logged-in superuser: every page
renders, writes go through the services, and a broken rule shows the rule's message on the
form with nothing saved."""

from __future__ import annotations

from html import escape

import pytest
from django.contrib import admin
from django.test import Client

from hosts import services as host_services
from hosts.choices import JobKind, LogLevel
from hosts.models import VM, Job, JobHost, JobLog, NetworkAttachment, Vnic
from networks import rules, services
from networks.models import ClusterNetwork, DataCenter, Network

MODELS = sorted(admin.site._registry, key=lambda m: m._meta.label)


def admin_url(model, view, *args):
    from django.urls import reverse

    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}",
                   args=args)


@pytest.fixture
def client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def inventory(cluster, host, make_network, admin_user):
    """One row of every registered model (and a few more), so pages show real rows."""
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    Group.objects.create(name="operators")
    Token.objects.create(user=admin_user)
    storage = make_network("storage", cluster, vm_network=False, vlan=10)
    NetworkAttachment.objects.create(host=host, network=storage,
                                     nic=host.nics.get(name="eth1"))
    outcome = host_services.setup_networks(host, rules.SetupRequest(
        bonds=(rules.BondData("bond0", 1, "", ("eth2", "eth3")),)), push=False)
    assert outcome.ok, outcome.violations
    vm = VM.objects.create(name="vm1", cluster=cluster, host=host)
    host_services.save_vnic(Vnic(vm=vm, name="nic1", profile=services.management_network(
        cluster.datacenter).vnic_profiles.get()))
    job = Job.objects.create(kind=JobKind.SYNC, description="sync host1")
    JobHost.objects.create(job=job, host=host)
    JobLog.objects.create(job=job, host=host, level=LogLevel.INFO, message="started")
    return {"storage": storage, "host": host, "cluster": cluster}


def form_data(response) -> dict:
    """The fields of the admin form on a page, as the browser would post them back."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if callable(value):  # a model default such as list
            value = value()
        value = field.prepare_value(value)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    for formset in response.context.get("inline_admin_formsets", []):
        management = formset.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management.initial.get(name, 0)
    return data


def test_every_model_is_registered():
    labels = {m._meta.label for m in MODELS}
    assert labels >= {"networks.DataCenter", "networks.Cluster", "networks.Network",
                      "networks.ClusterNetwork", "networks.VnicProfile", "hosts.Host",
                      "hosts.HostNic", "hosts.Bond", "hosts.NetworkAttachment", "hosts.VM",
                      "hosts.Vnic", "hosts.Job"}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_changelist_renders_its_rows(client, inventory, model):
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    count = model._default_manager.count()
    assert count >= 1
    assert response.context["cl"].result_count == count


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_change_page_renders(client, inventory, model):
    obj = model._default_manager.order_by("pk").first()
    response = client.get(admin_url(model, "change", obj.pk))
    assert response.status_code == 200
    assert escape(str(obj)) in response.content.decode()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_add_page_renders_or_is_refused_for_rows_only_services_write(client, inventory,
                                                                      model):
    model_admin = admin.site._registry[model]
    response = client.get(admin_url(model, "add"))
    if model_admin.has_add_permission(response.wsgi_request):
        assert response.status_code == 200
        assert "adminform" in response.context
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_changelist_search(client, inventory, model):
    if not admin.site._registry[model].search_fields:
        pytest.skip(f"{model._meta.label} has no search")
    response = client.get(admin_url(model, "changelist"), {"q": "no-such-thing-xyz"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


def test_creating_a_datacenter_creates_its_management_network(client, db):
    page = client.get(admin_url(DataCenter, "add"))
    data = {**form_data(page), "name": "east", "description": "east side"}
    response = client.post(admin_url(DataCenter, "add"), data)
    assert response.status_code == 302, response.context and response.context[
        "adminform"].form.errors
    datacenter = DataCenter.objects.get(name="east")
    mgmt = datacenter.networks.get()
    assert (mgmt.name, mgmt.vm_network, mgmt.description) == (
        "ovirtmgmt", True, "Management Network")
    assert list(mgmt.vnic_profiles.values_list("name", flat=True)) == ["ovirtmgmt"]


def test_creating_a_cluster_attaches_the_management_network(client, datacenter):
    from networks.models import Cluster

    page = client.get(admin_url(Cluster, "add"))
    data = {**form_data(page), "name": "west", "datacenter": datacenter.pk}
    response = client.post(admin_url(Cluster, "add"), data)
    assert response.status_code == 302
    row = ClusterNetwork.objects.get(cluster__name="west")
    assert row.network.name == "ovirtmgmt" and row.required and row.is_management


def _post_network(client, network, **changes):
    url = admin_url(Network, "change", network.pk)
    data = {**form_data(client.get(url)), **changes}
    return client.post(url, data)


def _assert_refused_with(response, message):
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert escape(message) in response.content.decode()


@pytest.mark.parametrize(("changes", "code"), [
    ({"vlan": 5000}, "vlan_out_of_range"),
    ({"name": "bond-uplink"}, "network_name_reserved_prefix"),
    ({"mtu": 50}, "mtu_out_of_range"),
    ({"dns_servers": '["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"]'},
     "dns_servers_too_many"),
])
def test_network_change_breaking_a_rule_shows_its_message(client, datacenter, make_network,
                                                         changes, code):
    network = make_network("storage", vm_network=False, vlan=10)
    response = _post_network(client, network, **changes)
    assert response.status_code == 200
    form = response.context["adminform"].form
    codes = [e.code for errors in form.errors.as_data().values() for e in errors]
    assert code in codes
    message = next(e.message for errors in form.errors.as_data().values() for e in errors
                   if e.code == code)
    _assert_refused_with(response, message)
    fresh = Network.objects.get(pk=network.pk)
    assert (fresh.name, fresh.vlan, fresh.mtu, fresh.dns_servers) == ("storage", 10, 0, [])


def test_network_add_breaking_a_rule_shows_its_message(client, datacenter):
    page = client.get(admin_url(Network, "add"))
    data = {**form_data(page), "datacenter": datacenter.pk, "name": "Bond7", "mtu": 0,
            "dns_servers": "[]"}
    response = client.post(admin_url(Network, "add"), data)
    _assert_refused_with(response, "The network name 'Bond7' starts with 'bond'")
    assert not Network.objects.filter(name="Bond7").exists()


def test_rename_of_a_network_in_use_is_refused_with_the_rule_message(client, inventory):
    storage = inventory["storage"]
    response = _post_network(client, storage, name="storage2")
    message = rules.check_network_change(rules.NetworkChange(
        old=storage.as_rule_data(),
        new=rules.NetworkData(name="storage2", vm_network=False, vlan=10),
        hosts_using=("host1",)))[0].message
    _assert_refused_with(response, message)
    assert Network.objects.get(pk=storage.pk).name == "storage"


def test_valid_network_change_is_saved(client, inventory):
    storage = inventory["storage"]
    response = _post_network(client, storage, description="iSCSI", mtu=9000)
    assert response.status_code == 302
    storage.refresh_from_db()
    assert (storage.description, storage.mtu) == ("iSCSI", 9000)
    # The MTU change of a network in use is pushed to its host.
    assert not NetworkAttachment.objects.get(network=storage).in_sync
    assert Job.objects.filter(kind=JobKind.NETWORK_CHANGE).count() == 1


def _post_cluster_network(client, row, **changes):
    url = admin_url(ClusterNetwork, "change", row.pk)
    data = {**form_data(client.get(url)), **changes}
    for key, value in list(data.items()):
        if value is False:
            del data[key]
    return client.post(url, data)


def test_management_role_cannot_move_while_the_cluster_has_hosts(client, inventory):
    row = ClusterNetwork.objects.get(network=inventory["storage"])
    response = _post_cluster_network(client, row, is_management="on", required="on")
    _assert_refused_with(response, "The management role cannot move from 'ovirtmgmt' to "
                                   "'storage' while the cluster has hosts.")
    assert ClusterNetwork.objects.get(is_management=True).network.name == "ovirtmgmt"


def test_management_role_cannot_be_unset_in_the_admin(client, inventory):
    row = ClusterNetwork.objects.get(is_management=True)
    response = _post_cluster_network(client, row, is_management=False)
    assert response.status_code == 200
    form = response.context["adminform"].form
    codes = [e.code for errors in form.errors.as_data().values() for e in errors]
    assert "management_role_unset" in codes
    row.refresh_from_db()
    assert row.is_management


def test_cluster_network_role_moves_in_the_admin(client, inventory):
    row = ClusterNetwork.objects.get(network=inventory["storage"])
    response = _post_cluster_network(client, row, is_display="on", required="on")
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.is_display
    assert not ClusterNetwork.objects.get(network__name="ovirtmgmt").is_display


def test_deleting_the_management_network_in_the_admin_is_refused(client, datacenter):
    mgmt = services.management_network(datacenter)
    response = client.post(admin_url(Network, "delete", mgmt.pk), {"post": "yes"},
                           follow=True)
    assert response.status_code == 200
    assert Network.objects.filter(pk=mgmt.pk).exists()
    assert "management network and cannot be removed" in response.content.decode()


def _changelist_cases():
    from tests.api.test_crud import ENDPOINTS  # the same declarations make the rows

    return [pytest.param(e, id=e.model._meta.label) for e in ENDPOINTS]


@pytest.mark.parametrize("endpoint", _changelist_cases())
def test_changelist_queries_do_not_grow_with_rows(client, world, endpoint):
    """Five more rows cost no more queries: an N+1 in a list column fails here."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = admin_url(endpoint.model, "changelist")
    endpoint.make(world, 0)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for i in range(1, 6):
        endpoint.make(world, i)
    with CaptureQueriesContext(connection) as more:
        response = client.get(url)
    assert response.context["cl"].result_count == endpoint.model.objects.count()
    assert len(more) == len(few), [q["sql"][:120] for q in more.captured_queries]


def test_vm_host_lacking_its_vnic_networks_is_refused_in_the_admin(client, inventory,
                                                                   make_host, make_network):
    guests = make_network("guests", inventory["cluster"], required=False)
    vm = VM.objects.create(name="vm2", cluster=inventory["cluster"])
    host_services.save_vnic(Vnic(vm=vm, name="nic1", profile=guests.vnic_profiles.get()))
    url = admin_url(VM, "change", vm.pk)
    data = {**form_data(client.get(url)), "host": inventory["host"].pk}
    response = client.post(url, data)
    _assert_refused_with(response, "does not implement the networks of VM vm2")
    vm.refresh_from_db()
    assert vm.host is None


def test_adding_a_host_queues_its_add_host_job(client, cluster):
    from hosts.models import Host

    page = client.get(admin_url(Host, "add"))
    data = {**form_data(page), "name": "h9", "address": "198.18.0.9", "cluster": cluster.pk}
    response = client.post(admin_url(Host, "add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    host = Host.objects.get(name="h9")
    assert host.status == "installing"
    assert Job.objects.get(kind=JobKind.ADD_HOST).hosts.get().host == host


def test_duplicate_network_name_shows_the_rule_message_once(client, datacenter):
    page = client.get(admin_url(Network, "add"))
    data = {**form_data(page), "datacenter": datacenter.pk, "name": "ovirtmgmt"}
    response = client.post(admin_url(Network, "add"), data)
    _assert_refused_with(response, "A network named 'ovirtmgmt' already exists")
    form = response.context["adminform"].form
    codes = sorted(e.code for errors in form.errors.as_data().values() for e in errors)
    assert codes == ["network_name_not_unique"]
