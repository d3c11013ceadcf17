"""Integration fixtures: a real Celery worker on Redis, and a lab of real hosts.

Real parts only: the worker is `celery.contrib.testing.worker.start_worker` consuming from
the Redis that REDIS_URL names; hosts are network namespaces with their own sshd
(tests/lab.py). Tests here use committed transactions (``transaction=True``) because the
worker runs on its own database connection.
"""

from __future__ import annotations

import os
import time

import pytest

from tests import lab as lab_module


def _missing_prerequisite() -> str | None:
    if not (os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL", "")
            ).startswith("redis"):
        return "REDIS_URL is not set: integration tests need a real Redis broker"
    return lab_module.require_lab_tools()


def pytest_collection_modifyitems(config, items):
    reason = _missing_prerequisite()
    if not reason:
        return
    here = os.path.dirname(__file__)
    ours = [item for item in items if str(item.fspath).startswith(here)]
    if ours and os.environ.get("NETPORTAL_REQUIRE_LAB") == "1":
        # CI promises the real parts: a missing one is a failure, not a skip.
        raise pytest.UsageError(f"NETPORTAL_REQUIRE_LAB=1 but {reason}")
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, django_db_blocker):
    """A real worker for the module, consuming from a purged Redis queue. Module-scoped, so
    modules that run worker processes of their own have the queue to themselves."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.control.purge()
    with django_db_blocker.unblock(), start_worker(
            app, pool="threads", concurrency=4, perform_ping_check=False,
            shutdown_timeout=30, loglevel="WARNING") as worker:
        yield worker


@pytest.fixture(scope="module")
def lab():
    with lab_module.Lab(n=3, nics=3) as built:
        yield built


def wait_job(job, timeout: float = 90.0):
    """Wait until a job reaches a final status; the job, refreshed."""
    from hosts.choices import JOB_FINAL_STATUSES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in JOB_FINAL_STATUSES:
            return job
        time.sleep(0.1)
    entries = list(job.hosts.values_list("host__name", "status", "error"))
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout} s: {entries}")
