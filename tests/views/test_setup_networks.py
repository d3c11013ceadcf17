"""The host's "Setup host networks" page (JSON preview and apply), its other actions, the
desired-state downloads and the live job panel."""

import json

import pytest
from django.urls import reverse

from hosts.models import Job


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


@pytest.fixture
def urls(inventory):
    pk = inventory.host.pk
    return {"page": reverse("hosts:host_setup", args=[pk]),
            "preview": reverse("hosts:host_setup_preview", args=[pk])}


def test_page_embeds_the_model(inventory, admin_client, urls):
    response = admin_client.get(urls["page"])
    model = response.context["model"]
    assert [n["name"] for n in model["nics"]] == ["eth0", "eth1", "eth2", "eth3"]
    vmnet = next(a for a in model["attachments"] if a["network"] == "vmnet")
    assert vmnet["in_sync"] is False and vmnet["out_of_sync"][0]["reported"] == 9000
    assert {n["name"] for n in model["networks"]} == {"ovirtmgmt", "storage", "vmnet"}
    assert b'id="setup-model"' in response.content


def test_preview_shows_changes_and_document_diff(inventory, admin_client, urls):
    request = {"attachments": [{"network": "storage", "interface": "eth2",
                                "ipv4": {"boot_protocol": "static", "address": "198.18.5.2",
                                         "netmask": "24"}}]}
    answer = post_json(admin_client, urls["preview"], request).json()
    assert answer["ok"] is True, answer
    assert "Attach storage to eth2" in answer["html"]
    assert "eth2.200" in answer["html"]  # the VLAN device the change adds
    assert "preview-commands-pending" in answer["html"]
    assert not inventory.host.attachments.filter(network=inventory.storage).exists()
    assert Job.objects.count() == 1  # the inventory's own


def test_preview_reports_every_violation_with_its_interface(inventory, admin_client, urls):
    request = {"removed_attachments": ["ovirtmgmt"],
               "bonds": [{"name": "bond0", "mode": 1, "slaves": ["eth2"]}]}
    answer = post_json(admin_client, urls["preview"], request).json()
    assert answer["ok"] is False
    by_code = {v["code"]: v for v in answer["violations"]}
    assert by_code["management_network_removed"]["interface"] == "eth0"
    assert by_code["bond_too_few_slaves"]["interface"] == "bond0"


def test_preview_with_sync_of_out_of_sync_network(inventory, admin_client, urls):
    answer = post_json(admin_client, urls["preview"], {"synced_networks": ["vmnet"]}).json()
    assert answer["ok"] is True
    assert "Sync vmnet" in answer["html"]
    inventory.attachment.refresh_from_db()
    assert inventory.attachment.in_sync is False


def test_apply_creates_job_and_redirects_to_it(inventory, admin_client, urls):
    request = {"attachments": [{"network": "storage", "interface": "eth2"}],
               "check_connectivity": False}
    response = post_json(admin_client, urls["page"], request)
    assert response.status_code == 200
    answer = response.json()
    job = Job.objects.order_by("-pk").first()
    assert answer == {"ok": True, "redirect": reverse("hosts:job", args=[job.pk])}
    assert job.request["check_connectivity"] is False
    assert inventory.host.attachments.filter(network=inventory.storage).exists()
    page = admin_client.get(answer["redirect"]).content.decode()
    assert 'data-host="host1"' in page and 'hx-trigger="every 1s"' in page


def test_apply_refused_saves_nothing(inventory, admin_client, urls):
    response = post_json(admin_client, urls["page"], {"removed_attachments": ["ovirtmgmt"]})
    assert response.status_code == 400
    assert response.json()["violations"][0]["code"] == "management_network_removed"
    assert inventory.host.attachments.filter(network__name="ovirtmgmt").exists()


def test_bad_input_answers_400(inventory, admin_client, urls):
    response = admin_client.post(urls["page"], "not json", content_type="application/json")
    assert response.status_code == 400
    response = post_json(admin_client, urls["preview"], {"bonds": [{"mode": 9}]})
    assert response.status_code == 400 and response.json()["ok"] is False


def test_setup_needs_change_permission(inventory, login, urls):
    client = login("hosts.view_host")
    assert post_json(client, urls["preview"], {}).status_code == 403
    assert post_json(client, urls["page"], {}).status_code == 403


def test_csrf_is_enforced(inventory, admin_user, urls):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert post_json(client, urls["page"], {}).status_code == 403


@pytest.mark.parametrize("action", ["host_sync", "host_refresh"])
def test_host_actions_queue_a_job(inventory, admin_client, action):
    before = Job.objects.count()
    response = admin_client.post(reverse(f"hosts:{action}", args=[inventory.host.pk]))
    job = Job.objects.order_by("-pk").first()
    assert Job.objects.count() == before + 1
    assert response["Location"] == reverse("hosts:job", args=[job.pk])


def test_host_actions_are_post_only(inventory, admin_client):
    assert admin_client.get(reverse("hosts:host_sync", args=[inventory.host.pk])
                            ).status_code == 405


def test_approve_key(inventory, admin_client):
    from hosts.choices import HostKeyState

    host = inventory.host
    host.host_key_state, host.host_key_fingerprint = HostKeyState.PENDING, "SHA256:right"
    host.save()
    url = reverse("hosts:host_approve_key", args=[host.pk])
    response = admin_client.post(url, {"fingerprint": "SHA256:wrong"}, follow=True)
    assert "SHA256:wrong" in response.content.decode() or response.status_code == 200
    host.refresh_from_db()
    assert host.host_key_state == HostKeyState.PENDING
    response = admin_client.post(url, {"fingerprint": "SHA256:right"})
    host.refresh_from_db()
    assert host.host_key_state == HostKeyState.APPROVED
    assert response["Location"].startswith("/jobs/")


@pytest.mark.parametrize(("fmt", "needle"), [("json", '"interfaces"'), ("yaml", "interfaces:")])
def test_desired_state_download(inventory, admin_client, fmt, needle):
    response = admin_client.get(reverse("hosts:host_state", args=[inventory.host.pk, fmt]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert needle in response.content.decode()


def test_job_progress_stops_polling_when_finished(inventory, admin_client):
    from hosts.choices import JobStatus

    url = reverse("hosts:job_progress", args=[inventory.job.pk])
    page = admin_client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in page and "connected" in page
    inventory.job.status = JobStatus.COMMITTED
    inventory.job.save()
    page = admin_client.get(url).content.decode()
    assert "hx-trigger" not in page and 'data-job-status="committed"' in page


def test_preview_of_a_reachable_host_asks_its_agent_for_the_commands(inventory, admin_client,
                                                                      urls):
    from hosts.choices import HostKeyState, JobHostStatus, JobKind

    host = inventory.host
    host.host_key_state = HostKeyState.APPROVED
    host.save()
    request = {"attachments": [{"network": "storage", "interface": "eth2"}]}
    answer = post_json(admin_client, urls["preview"], request).json()
    assert answer["ok"] is True, answer
    job = Job.objects.get(kind=JobKind.PREVIEW)
    assert job.request["attachments"][0]["network"] == "storage"
    assert reverse("hosts:preview_commands", args=[job.pk]) in answer["html"]
    panel = admin_client.get(reverse("hosts:preview_commands", args=[job.pk]))
    assert b"Asking the host" in panel.content and b"hx-get" in panel.content
    entry = job.hosts.get()
    entry.status, entry.plan = JobHostStatus.COMMITTED, {"commands": ["link add eth2.200"]}
    entry.save()
    job.status = "committed"
    job.save()
    panel = admin_client.get(reverse("hosts:preview_commands", args=[job.pk]))
    assert b"link add eth2.200" in panel.content and b"hx-get" not in panel.content
