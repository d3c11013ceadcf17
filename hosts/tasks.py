"""Celery tasks of the hosts app. Tasks receive ids only and read the rest (credentials
included) from the database; the job row exists before the task is queued."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from celery.worker.control import control_command

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


@shared_task(name="hosts.requeue_jobs")
def requeue_jobs() -> list[int]:
    """Periodic: jobs that never reached the broker, or whose runner was lost, go again."""
    return worker.requeue_jobs()


@worker_ready.connect
def _requeue_on_start(**_kwargs) -> None:
    """A worker that starts (after a crash, say) picks up what was left behind."""
    try:
        worker.requeue_jobs()
    except Exception:  # the database may not be up yet; beat sweeps again soon
        logging.getLogger(__name__).exception("requeue at worker start failed")


@control_command()
def close_ssh_connections(_state) -> dict:
    """``celery -A portal.celery control close_ssh_connections``: close the SSH connections
    this worker keeps open between jobs (`hosts.ssh.POOL`), so that the next job to each host
    connects anew (after maintenance of the hosts' sshd, or to measure a cold start)."""
    from hosts import ssh

    return {"ok": f"closed {ssh.POOL.close_all()} kept connection(s)"}
