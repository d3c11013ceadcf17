"""Secrets: the portal's SSH private key and a host's one-time password are encrypted at
rest (portal/crypto.py), and never appear in API output, task arguments, job logs, audit
entries or log output, from the API request to the worker that uses the password.

The broker is the only stand-in (a spy on ``run_job.apply_async``/``delay``, conftest.py);
the worker's SSH calls are replaced in the one test that runs the install job, because a
lab host that accepts a password login is out of scope here.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.db import connection
from django.test import Client

from hosts import ssh
from hosts.models import Host, Job, JobLog
from portal import crypto
from portal.models import AuditEntry

PASSWORD = "Pa55-once-Zq7!x"


def raw_column(table, column, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def everything_written() -> str:
    """Every job, job log line and audit entry, as text."""
    rows = [json.dumps(list(Job.objects.values()), default=str),
            json.dumps(list(JobLog.objects.values()), default=str),
            json.dumps(list(AuditEntry.objects.values()), default=str)]
    return "\n".join(rows)


def test_private_key_is_encrypted_at_rest(db):
    _key, pair = ssh.portal_key()
    raw = raw_column("hosts_portalkeypair", "private_key", pair.pk)
    assert "PRIVATE KEY" not in raw and "-----BEGIN" not in raw
    assert "BEGIN OPENSSH PRIVATE KEY" in crypto.decrypt(raw)
    entry = AuditEntry.objects.get(content_type__model="portalkeypair", action="create")
    assert "private_key" not in entry.after and raw not in json.dumps(entry.after)
    assert entry.after["fingerprint"] == pair.fingerprint


def test_api_password_goes_nowhere_but_the_encrypted_column(world, admin_user, token_client,
                                                           queued, caplog):
    caplog.set_level(logging.DEBUG)
    client = token_client(admin_user)
    created = client.post("/api/hosts/", {"name": "h9", "address": "198.18.0.99",
                                          "cluster": world.cluster.pk, "password": PASSWORD},
                          format="json")
    assert created.status_code == 201, created.data
    host = Host.objects.get(pk=created.data["id"])
    raw = raw_column("hosts_host", "install_password", host.pk)
    assert PASSWORD not in raw and crypto.decrypt(raw) == PASSWORD
    responses = [created, client.get(f"/api/hosts/{host.pk}/"), client.get("/api/hosts/"),
                 client.get("/api/jobs/"), client.get("/api/audit/", {"limit": 1000})]
    for response in responses:
        assert response.status_code in (200, 201)
        assert PASSWORD not in response.content.decode() and raw not in \
            response.content.decode()
        assert "install_password" not in response.content.decode()
    # The task gets the job id, nothing else (DESIGN.md: tasks get ids).
    job = Job.objects.get(hosts__host=host)
    assert job.request == {}
    # (Nothing is sent inside the test's transaction; test_task_is_queued_with_the_job_id
    # _only commits for real.)
    assert PASSWORD not in repr(queued)
    assert all(args == (job.pk,) and kwargs == {} for args, kwargs, _ in queued)
    text = everything_written()
    assert PASSWORD not in text and raw not in text
    assert PASSWORD not in caplog.text and raw not in caplog.text


def test_task_is_queued_with_the_job_id_only(transactional_db, admin_user, queued):
    """With real commits (on_commit runs), the enqueue sends exactly (job_id,)."""
    from hosts import services
    from networks import services as network_services
    from networks.models import Cluster, DataCenter

    dc = network_services.create_datacenter(DataCenter(name="dcq"))
    cluster = network_services.create_cluster(Cluster(datacenter=dc, name="cq"))
    host = services.create_host(Host(name="hq", address="198.18.0.98", cluster=cluster),
                                user=admin_user, password=PASSWORD)
    job = Job.objects.get(hosts__host=host)
    assert [(args, kwargs) for args, kwargs, _ in queued] == [((job.pk,), {})]
    assert PASSWORD not in repr(queued)


def test_ui_password_goes_nowhere_but_the_encrypted_column(world, admin_user, caplog):
    caplog.set_level(logging.DEBUG)
    client = Client()
    client.force_login(admin_user)
    response = client.post("/hosts/add/", {
        "name": "h8", "address": "198.18.0.98", "ssh_port": 22, "ssh_user": "root",
        "cluster": world.cluster.pk, "expected_fingerprint": "", "password": PASSWORD})
    assert response.status_code == 302, response.context["form"].errors
    host = Host.objects.get(name="h8")
    assert crypto.decrypt(host.install_password) == PASSWORD
    page = client.get(f"/hosts/{host.pk}/")
    admin_page = client.get(f"/admin/hosts/host/{host.pk}/change/")
    for shown in (page, admin_page):
        assert shown.status_code == 200
        assert PASSWORD not in shown.content.decode()
        assert host.install_password not in shown.content.decode()
    assert PASSWORD not in everything_written() and PASSWORD not in caplog.text


def test_worker_uses_the_password_without_writing_it(world, admin_user, monkeypatch, caplog):
    """The install job decrypts the password for the SSH login only: when that login fails
    the job log says why, without the password; logs and audit entries never hold it."""
    from hosts import services, worker
    from hosts.tasks import run_job

    caplog.set_level(logging.DEBUG)
    used = []
    monkeypatch.setattr(worker, "_check_key", lambda run: None)

    def connect(host, pkey, password=None):
        raise ssh.SshError("auth_failed", f"Authentication to {host.name} failed")

    def install(host, public_key, password):
        used.append(password)
        raise ssh.SshError("auth_failed", f"Password login to {host.name} failed")

    monkeypatch.setattr(ssh, "connect", connect)
    monkeypatch.setattr(ssh, "install_portal_key", install)
    host = services.create_host(Host(name="h7", address="198.18.0.97",
                                     cluster=world.cluster), user=admin_user,
                                password=PASSWORD)
    job = Job.objects.get(hosts__host=host)
    run_job.apply(args=[job.pk])
    assert used == [PASSWORD]  # read from the database by the worker, not from the task
    logs = list(JobLog.objects.filter(job=job).values_list("message", flat=True))
    assert any("Password login to h7 failed" in line for line in logs), logs
    assert PASSWORD not in everything_written()
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("field", ["install_password"])
def test_audit_never_holds_secret_fields(world, field):
    host = world.host
    setattr(host, field, crypto.encrypt(PASSWORD))
    host.save()
    assert not AuditEntry.objects.filter(object_id=host.pk, content_type__model="host",
                                         action="update").exists()
    pk = host.pk
    host.delete()
    entry = AuditEntry.objects.get(object_id=pk, content_type__model="host",
                                   action="delete")
    assert field not in entry.before
