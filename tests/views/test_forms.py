"""Create, edit and delete forms: a rule's message shows on the form (the same text the
rules give everywhere), and nothing is saved."""

from django.urls import reverse
from django.utils.html import escape


def test_create_datacenter_makes_management_network(admin_client, db):
    from networks.models import DataCenter

    response = admin_client.post(reverse("networks:datacenter_add"),
                                 {"name": "dc-new", "description": ""})
    dc = DataCenter.objects.get(name="dc-new")
    assert response.status_code == 302 and response["Location"] == reverse(
        "networks:datacenter", args=[dc.pk])
    assert dc.networks.filter(name="ovirtmgmt").exists()


def test_duplicate_datacenter_name_shows_rule(admin_client, datacenter):
    from networks.models import DataCenter

    response = admin_client.post(reverse("networks:datacenter_add"), {"name": "DC1"})
    assert response.status_code == 200
    errors = response.context["form"].errors.as_data()["name"]
    assert [e.code for e in errors] == ["datacenter_name_not_unique"]
    assert escape(errors[0].message) in response.content.decode()
    assert DataCenter.objects.count() == 1


def test_network_form_shows_every_rule_and_saves_nothing(admin_client, datacenter):
    from networks.models import Network

    before = Network.objects.count()
    response = admin_client.post(reverse("networks:network_add"), {
        "datacenter": datacenter.pk, "name": "bond-net", "vlan": "5000", "mtu": "20",
        "vm_network": "", "stp": "on", "dns_servers": "1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4"})
    assert response.status_code == 200
    codes = {e.code for errors in response.context["form"].errors.as_data().values()
             for e in errors}
    assert {"network_name_reserved_prefix", "vlan_out_of_range", "mtu_out_of_range",
            "stp_requires_vm_network", "dns_servers_too_many"} <= codes
    page = response.content.decode()
    assert "is-invalid" in page and "invalid-feedback" in page
    for errors in response.context["form"].errors.as_data().values():
        assert all(escape(e.message) in page for e in errors)
    assert Network.objects.count() == before


def test_network_edit_refused_by_service_rule(inventory, admin_client):
    """Renaming a network a host carries is refused by networks.services.update_network
    (a rule over other rows), shown on the name field."""
    url = reverse("networks:network_edit", args=[inventory.vmnet.pk])
    response = admin_client.post(url, {"name": "renamed", "vlan": "100", "mtu": "0",
                                       "vm_network": "on"})
    assert response.status_code == 200
    errors = response.context["form"].errors.as_data()
    assert [e.code for e in errors["name"]] == ["network_rename_in_use"]
    inventory.vmnet.refresh_from_db()
    assert inventory.vmnet.name == "vmnet"


def test_network_edit_saves(inventory, admin_client):
    url = reverse("networks:network_edit", args=[inventory.storage.pk])
    response = admin_client.post(url, {"name": "storage", "description": "SAN", "vlan": "201",
                                       "mtu": "9000", "dns_servers": ""})
    assert response.status_code == 302
    inventory.storage.refresh_from_db()
    assert (inventory.storage.vlan, inventory.storage.mtu) == (201, 9000)


def test_delete_management_network_refused(inventory, admin_client):
    from networks.models import Network

    mgmt = Network.objects.get(name="ovirtmgmt")
    response = admin_client.post(reverse("networks:network_delete", args=[mgmt.pk]))
    assert response.status_code == 409
    assert "cannot be" in response.content.decode()
    assert Network.objects.filter(pk=mgmt.pk).exists()


def test_delete_datacenter_with_clusters_refused(inventory, admin_client):
    response = admin_client.post(reverse("networks:datacenter_delete",
                                         args=[inventory.datacenter.pk]))
    assert response.status_code == 409
    assert "still used by" in response.content.decode()


def test_delete_network(inventory, admin_client):
    from networks.models import Network

    response = admin_client.post(reverse("networks:network_delete", args=[inventory.storage.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("networks:network_list")
    assert not Network.objects.filter(pk=inventory.storage.pk).exists()


def test_cluster_duplicate_name_and_bad_mac_pool(admin_client, cluster):
    from networks.models import Cluster

    response = admin_client.post(reverse("networks:cluster_add"), {
        "datacenter": cluster.datacenter_id, "name": "C1",
        "mac_pool_start": "56:6f:00:00:ff:ff", "mac_pool_end": "56:6f:00:00:00:00"})
    codes = {e.code for errors in response.context["form"].errors.as_data().values()
             for e in errors}
    assert {"cluster_name_not_unique", "mac_pool_range_reversed"} <= codes
    assert Cluster.objects.count() == 1


def test_create_cluster_is_attached_to_management(admin_client, datacenter):
    from networks.models import Cluster

    response = admin_client.post(reverse("networks:cluster_add"), {
        "datacenter": datacenter.pk, "name": "c2",
        "mac_pool_start": "56:6f:00:00:00:00", "mac_pool_end": "56:6f:00:00:ff:ff"})
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="c2")
    assert cluster.cluster_networks.get().is_management


def test_create_host_queues_install_job_without_the_password(admin_client, cluster):
    from hosts.models import Host, Job

    response = admin_client.post(reverse("hosts:host_add"), {
        "name": "h9", "address": "198.18.0.9", "ssh_port": "22", "ssh_user": "root",
        "cluster": cluster.pk, "password": "s3cret-once"})
    host = Host.objects.get(name="h9")
    assert response.status_code == 302
    assert host.install_password and "s3cret-once" not in host.install_password
    job = Job.objects.get()
    assert "s3cret-once" not in str(job.request)


def test_vm_on_host_of_other_cluster_refused(inventory, admin_client, datacenter):
    from hosts.models import VM
    from networks import services
    from networks.models import Cluster

    other = services.create_cluster(Cluster(datacenter=datacenter, name="other"))
    response = admin_client.post(reverse("hosts:vm_add"), {
        "name": "vm2", "cluster": other.pk, "host": inventory.host.pk, "status": "down"})
    assert response.status_code == 200
    codes = {e.code for errors in response.context["form"].errors.as_data().values()
             for e in errors}
    assert "vm_host_other_cluster" in codes
    assert not VM.objects.filter(name="vm2").exists()


def test_vnic_form_offers_only_networks_on_the_host(inventory, admin_client):
    response = admin_client.get(reverse("hosts:vnic_add", args=[inventory.vm.pk]))
    choices = [str(p) for p in response.context["form"].fields["profile"].queryset]
    # ovirtmgmt and vmnet are VM networks on host1; storage is no VM network.
    assert choices == ["ovirtmgmt", "vmnet"]


def test_vnic_bad_mac_shows_rule(inventory, admin_client):
    from hosts.models import Vnic

    response = admin_client.post(reverse("hosts:vnic_add", args=[inventory.vm.pk]), {
        "name": "nic2", "profile": inventory.vnic.profile_id, "mac": "01:00:5e:00:00:01",
        "type": "virtio", "linked": "on"})
    assert response.status_code == 200
    codes = {e.code for errors in response.context["form"].errors.as_data().values()
             for e in errors}
    assert codes == {"mac_address_multicast"}
    assert not Vnic.objects.filter(name="nic2").exists()


def test_vnic_created_with_pool_mac_and_back_to_vm(inventory, admin_client):
    from hosts.models import Vnic

    response = admin_client.post(reverse("hosts:vnic_add", args=[inventory.vm.pk]), {
        "name": "nic2", "profile": inventory.vnic.profile_id, "mac": "", "type": "e1000",
        "linked": "on"})
    assert response.status_code == 302
    assert response["Location"] == reverse("hosts:vm", args=[inventory.vm.pk])
    assert Vnic.objects.get(name="nic2").mac.startswith("56:6f:")


def test_vnic_delete_returns_to_vm(inventory, admin_client):
    response = admin_client.post(reverse("hosts:vnic_delete", args=[inventory.vnic.pk]))
    assert response["Location"] == reverse("hosts:vm", args=[inventory.vm.pk])
