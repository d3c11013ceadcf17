"""The audit log (portal/audit.py): every change of the product's objects is recorded with
who, when, the entry point (ui, api, admin, worker), before and after; shown per object
and globally in the API and the admin; each host's outcome of a job is an entry linked to
the job. Secrets never reach an entry, and a failing entry never breaks a change.
"""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from hosts.models import Host, HostNic, Job, JobHost
from networks.models import Network
from portal.models import AuditEntry
from portal.roles import OPERATOR, VIEWER


def entries_for(obj):
    return AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj),
                                     object_id=obj.pk).order_by("pk")


def test_api_create_update_delete_recorded_with_user_and_source(world, role_user,
                                                                 token_client):
    user = role_user(OPERATOR)
    client = token_client(user)
    created = client.post("/api/networks/", {"datacenter": world.dc.pk, "name": "blue",
                                             "vlan": 30, "mtu": 1500}, format="json")
    assert created.status_code == 201
    network = Network.objects.get(pk=created.data["id"])
    assert client.patch(f"/api/networks/{network.pk}/", {"mtu": 9000},
                        format="json").status_code == 200
    assert client.delete(f"/api/networks/{network.pk}/").status_code == 204
    create, update, delete = entries_for(network)
    for entry in (create, update, delete):
        assert (entry.user, entry.username, entry.source) == (user, user.username, "api")
    assert create.action == "create" and create.after["name"] == "blue"
    assert create.after["vlan"] == 30 and create.before == {}
    assert update.action == "update"
    assert (update.before, update.after) == ({"mtu": 1500}, {"mtu": 9000})
    assert delete.action == "delete" and delete.before["mtu"] == 9000 and delete.after == {}
    # The service's side effect (the default vNIC profile) is recorded too, same actor.
    profile = AuditEntry.objects.get(content_type__model="vnicprofile", action="create",
                                     object_repr="blue")
    assert profile.source == "api" and profile.user == user


def test_ui_and_admin_changes_name_their_source(world, role_user):
    user = role_user(OPERATOR)
    client = Client()
    client.force_login(user)
    response = client.post(f"/networks/{world.vmnet.pk}/edit/", {
        "datacenter": world.dc.pk, "name": "vmnet", "description": "from the UI",
        "vlan": 20, "mtu": 0, "vm_network": "on", "label": "lab", "dns_servers": ""})
    assert response.status_code == 302, response.context["form"].errors
    client.post(f"/admin/networks/network/{world.storage.pk}/change/", {
        "name": "storage", "description": "from the admin", "vlan": 10, "mtu": 0,
        "label": "", "dns_servers": "[]"})
    by_source = {e.source: e for e in AuditEntry.objects.filter(action="update",
                                                                content_type__model="network")}
    assert by_source["admin"].after == {"description": "from the admin"}
    assert by_source["admin"].user == user
    assert by_source["ui"].after == {"description": "from the UI"}


def test_rolled_back_change_leaves_no_entry(world, token_client, admin_user):
    client = token_client(admin_user)
    before = AuditEntry.objects.count()
    # ovirtmgmt cannot be deleted: the service refuses, nothing is written.
    response = client.delete(f"/api/networks/{world.mgmt.pk}/")
    assert response.status_code == 400
    assert AuditEntry.objects.count() == before


def test_report_churn_is_not_recorded(world):
    host = world.host
    before = AuditEntry.objects.count()
    host.reported = {"interfaces": []}
    host.save(update_fields=["reported", "last_refresh", "updated"])
    host.refresh_from_db()
    host.save()  # nothing changed
    nic = host.nics.get(name="eth1")
    nic.speed, nic.mtu = 10000, 9000  # what the host reports
    nic.save()
    assert AuditEntry.objects.count() == before
    nic.labels = ["lab"]  # what an operator sets
    nic.save()
    (entry,) = AuditEntry.objects.filter(pk__gt=0).order_by("-pk")[:1]
    assert entry.after == {"labels": ["lab"]} and entry.before == {"labels": []}


def test_a_failing_entry_never_breaks_the_change(world, monkeypatch, caplog):
    from portal import audit

    def broken(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit, "_record", broken)
    network = world.storage
    network.description = "still saved"
    network.save()
    network.refresh_from_db()
    assert network.description == "still saved"
    assert "audit: cannot record" in caplog.text


def test_worker_outcome_per_host_is_linked_to_the_job(world, admin_user):
    """A job run by the task (hosts.run_job, Celery's eager apply: the task's signals run)
    records each host's final outcome as an ``apply`` entry by the job's creator."""
    from hosts import services
    from hosts.tasks import run_job

    job = services.queue_job("refresh", [world.host], user=admin_user,
                             description="refresh h1")
    run_job.apply(args=[job.pk])  # the host key is not approved: the host fails at once
    entry = JobHost.objects.get(job=job)
    assert entry.status == "failed"
    (apply,) = AuditEntry.objects.filter(job=job, action="apply")
    assert apply.source == "worker" and apply.user == admin_user
    assert apply.object_id == world.host.pk and apply.content_type.model == "host"
    assert apply.after["status"] == "failed" and "not approved" in apply.after["error"]
    assert "plan" in apply.before
    created = AuditEntry.objects.get(content_type__model="job", object_id=job.pk)
    assert created.action == "create" and created.job_id == job.pk


def test_api_per_object_and_global_lists(world, role_user, token_client):
    client = token_client(role_user(VIEWER))
    world.vmnet.description = "changed"
    world.vmnet.save()
    listed = client.get("/api/audit/", {"object_type": "networks.network",
                                         "object_id": world.vmnet.pk}).data
    assert listed["count"] >= 2
    assert {r["action"] for r in listed["results"]} >= {"create", "update"}
    assert all(r["object_type"] == "networks.network" and r["object_id"] == world.vmnet.pk
               for r in listed["results"])
    everything = client.get("/api/audit/", {"limit": 1000}).data
    assert everything["count"] == AuditEntry.objects.count()
    assert client.get("/api/audit/", {"object_id": "x"}).status_code == 400
    assert client.post("/api/audit/", {}, format="json").status_code == 403  # viewer
    entry_id = listed["results"][0]["id"]
    assert client.delete(f"/api/audit/{entry_id}/").status_code in (403, 405)


def test_admin_history_button_shows_the_object_entries(world, role_user):
    client = Client()
    client.force_login(role_user(VIEWER))
    history = client.get(f"/admin/networks/network/{world.vmnet.pk}/history/")
    assert history.status_code == 302
    page = client.get(history["Location"])
    assert page.status_code == 200
    assert b"vmnet" in page.content and b"?e=1" not in history["Location"].encode()
    assert page.context["cl"].result_count == entries_for(world.vmnet).count()
    assert client.get(f"/admin/hosts/job/{world.job.pk}/change/").status_code == 200
    glob = client.get("/admin/portal/auditentry/")
    assert glob.status_code == 200
    assert glob.context["cl"].result_count == AuditEntry.objects.count()


@pytest.mark.parametrize("model", [Host, HostNic, Job])
def test_audited_models_keep_fast_paths_elsewhere(model):
    """JobLog is not audited: deleting a job's logs stays one query (no signal)."""
    from django.db.models.signals import post_delete

    from hosts.models import JobLog

    assert not post_delete.has_listeners(JobLog)
    assert post_delete.has_listeners(model)
