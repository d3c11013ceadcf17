"""Plain helpers that make rows for tests (fixtures in conftest.py use them too)."""

from __future__ import annotations


def make_job(host, kind, *more_hosts):
    """A job of ``kind`` with one pending entry per host (as services.queue_job writes it,
    without queueing anything)."""
    from hosts.models import Job, JobHost

    job = Job.objects.create(kind=kind, description=f"{kind} of {host.name}")
    JobHost.objects.bulk_create(JobHost(job=job, host=h) for h in (host, *more_hosts))
    return job
