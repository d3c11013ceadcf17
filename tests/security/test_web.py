"""Web security: CSRF on every session-authenticated write (operator pages, admin, API),
production settings that pass ``manage.py check --deploy`` with no warning, and throttled
logins on both login pages (portal/auth.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


# --- CSRF -------------------------------------------------------------------------------


@pytest.fixture
def strict_client(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(("url", "data"), [
    ("/datacenters/add/", {"name": "dc-csrf"}),
    ("/admin/networks/datacenter/add/", {"name": "dc-csrf"}),
    ("/api/datacenters/", {"name": "dc-csrf"}),
], ids=["ui", "admin", "api-session"])
def test_post_without_csrf_token_is_refused(strict_client, db, url, data):
    from networks.models import DataCenter

    response = strict_client.post(url, data)
    assert response.status_code == 403
    assert not DataCenter.objects.filter(name="dc-csrf").exists()


def test_post_with_csrf_token_is_accepted(strict_client, db):
    page = strict_client.get("/admin/networks/datacenter/add/")
    token = page.cookies["csrftoken"].value
    response = strict_client.post("/api/datacenters/", '{"name": "dc-ok"}',
                                  content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


def test_token_auth_needs_no_csrf_token(admin_user, db):
    """API tokens are not cookies: a cross-site page cannot send one, so no CSRF token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user)}")
    assert client.post("/api/datacenters/", {"name": "dc-token"},
                       format="json").status_code == 201


# --- Production settings ----------------------------------------------------------------


def run_check(tmp_path, **extra):
    # A production process's environment: none of the test run's own switches (the browser
    # tests set DJANGO_ALLOW_ASYNC_UNSAFE for Playwright's event loop).
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "NETPORTAL_TLS", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update({"NETPORTAL_DATA_DIR": str(tmp_path), "DEBUG": "0",
                "SECRET_KEY": "x7#Kq2!mZ9$wL4@pR8^tV1&nB6*cY3(dF5)hJ0-gS" * 2,
                "ALLOWED_HOSTS": "portal.example.net"}, **extra)
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "check", "--deploy",
                           "--fail-level", "WARNING"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_check_deploy_is_clean_with_tls(tmp_path):
    proc = run_check(tmp_path, NETPORTAL_TLS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout + proc.stderr


def test_embedded_default_keeps_plain_http(tmp_path):
    """Without NETPORTAL_TLS the deploy check names exactly the TLS settings it lacks, and
    nothing else: http://127.0.0.1:8000 keeps working (no secure-only cookies, no
    redirect)."""
    proc = run_check(tmp_path)
    out = proc.stdout + proc.stderr
    warned = set(__import__("re").findall(r"security\.W\d+", out))
    assert warned == {"security.W004", "security.W008", "security.W012", "security.W016"}, out


def test_security_headers(client, db, settings):
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response.cookies["csrftoken"]["samesite"] == "Lax"


# --- Login throttling -------------------------------------------------------------------


@pytest.fixture
def operator(django_user_model, fast_password_hasher, db):
    return django_user_model.objects.create_user("alice", password="Right-pass-42",
                                                 is_staff=True)


def _login(client, url, password):
    return client.post(url, {"username": "alice", "password": password})


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"], ids=["ui", "admin"])
def test_sixth_attempt_is_refused_even_with_the_right_password(url, operator):
    client = Client()
    for _ in range(5):
        response = _login(client, url, "wrong")
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    response = _login(client, url, "Right-pass-42")
    assert response.status_code == 200, "the right password must be refused now"
    assert "_auth_user_id" not in client.session
    # Another address is not throttled (per user name and address).
    other = Client(REMOTE_ADDR="198.18.0.50")
    assert _login(other, url, "Right-pass-42").status_code == 302


def test_admin_login_says_why(operator):
    client = Client()
    for _ in range(6):
        response = _login(client, "/admin/login/", "wrong")
    assert b"Too many failed logins" in response.content


def test_throttle_window_passes(operator, settings):
    from django.core.cache import cache

    client = Client()
    for _ in range(5):
        _login(client, "/login/", "wrong")
    assert _login(client, "/login/", "Right-pass-42").status_code == 200
    cache.clear()  # the window (NETPORTAL_LOGIN_WINDOW seconds) passed
    assert _login(client, "/login/", "Right-pass-42").status_code == 302


def test_a_success_resets_the_count(operator):
    client = Client()
    for _ in range(4):
        _login(client, "/login/", "wrong")
    assert _login(client, "/login/", "Right-pass-42").status_code == 302
    client.logout()
    for _ in range(4):
        _login(client, "/login/", "wrong")
    assert _login(client, "/login/", "Right-pass-42").status_code == 302
