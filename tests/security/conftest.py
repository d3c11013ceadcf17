"""Fixtures of the security tests: users in each role, API clients, no broker.

Nothing here is mocked but the broker: tasks are captured (`queued`) so a test can assert
what a task would receive, and no test depends on Redis.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def queued(monkeypatch):
    """Every task sent (``apply_async``/``delay`` of hosts.run_job), as (args, kwargs)."""
    from hosts.tasks import run_job

    calls = []

    def spy(args=None, kwargs=None, **options):
        calls.append((tuple(args or ()), dict(kwargs or {}), options))

    monkeypatch.setattr(run_job, "apply_async", spy)
    monkeypatch.setattr(run_job, "delay", lambda *a, **k: spy(a, k))
    return calls


@pytest.fixture(autouse=True)
def clear_cache():
    """Login throttle counters (portal/auth.py) never leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def role_user(db, django_user_model, fast_password_hasher):
    """A staff user who is a member of one role group (no direct permissions)."""
    from django.contrib.auth.models import Group

    def make(role, username=None):
        user = django_user_model.objects.create_user(
            username=username or role.replace(" ", "-"), password="Correct-horse-9",
            is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def token_client():
    """A DRF client authenticated with an API token (rest_framework.authtoken)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make
