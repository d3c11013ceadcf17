"""Celery tasks of the hosts app. Tasks receive ids only and read the rest (credentials
included) from the database; the job row exists before the task is queued."""

from __future__ import annotations

from celery import shared_task

from hosts import worker


@shared_task(name="hosts.run_job", acks_late=True)
def run_job(job_id: int) -> None:
    """Run a job on its hosts (add host, setup networks, sync, network change, refresh).

    Late acknowledgement: a worker lost mid-job gets the task redelivered, and the runner
    resumes the entries that did not finish.
    """
    worker.run_job(job_id)


@shared_task(name="hosts.refresh_hosts", acks_late=True)
def refresh_hosts() -> int | None:
    """Periodic: read every reachable host's state (sync state, status); one job."""
    from hosts import services

    job = services.refresh_all_hosts(queue=False)
    if job is None:
        return None
    worker.run_job(job.pk)
    return job.pk
