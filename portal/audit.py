"""The audit log: who changed what, when, through which entry point, before and after.

How it is captured (DESIGN.md: signals carry no business logic; these only record):

* The actor and the source live in a context variable. `AuditMiddleware` sets it for each
  request (``/api/`` -> api, ``/admin/`` -> admin, anything else -> ui; the user is read
  when an entry is written, so DRF's token authentication, which runs in the view, is
  seen). Celery's ``task_prerun``/``task_postrun`` signals set it around every task of the
  hosts app (source worker; for ``hosts.run_job`` the job, whose creator is the user), so
  the worker's code needs nothing; `acting` does the same for code run outside a task.
  Anything else (shell, management commands, migrations) is ``system``.
* ``pre_save`` reads the stored row of an update (one query), ``post_save`` and
  ``post_delete`` write one `AuditEntry` in the same transaction, inside a savepoint, so a
  rolled-back change leaves no entry and a failing entry never breaks the change. A handler
  never raises into the caller.
* Secrets are never stored: ``Host.install_password`` and ``PortalKeyPair.private_key`` are
  left out (`EXCLUDED`).

What is not recorded, and why:

* ``JobLog``: it is itself a log of the job (and the job's entries link here).
* What hosts report: ``Host.reported``/``last_refresh``/``applied_state``, an attachment's
  ``reported``/``in_sync``/``out_of_sync``, a NIC's MAC, speed, MTU and link state, and the
  NIC rows the reports create and remove. A periodic refresh of every host would otherwise
  write an entry per host every few minutes, burying the operators' changes; the job and
  its JobHost rows already record each refresh. A NIC's operator-set fields (labels, bond)
  are recorded. An update whose only differences are such fields writes nothing.
* ``Job``'s own progress (status, started, finished): a job is recorded when created (who
  asked for what: its request), and each host's final outcome as an ``apply`` entry (from
  its JobHost: status, error, plan, result), linked to the job.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

log = logging.getLogger(__name__)


@dataclass
class Actor:
    source: str
    request: object = None  # the HttpRequest, whose .user is read when an entry is written
    user: object = None
    job_id: int | None = None
    _job_user_read: bool = False


_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor",
                                                                      default=None)

# Fields never written to an entry (secrets) and fields whose changes alone are not
# recorded (reported state, timestamps). "model label" -> field names.
EXCLUDED = {
    "hosts.host": {"install_password"},
    "hosts.portalkeypair": {"private_key"},
}
NOISE = {
    "*": {"created", "updated"},
    "hosts.host": {"reported", "last_refresh", "applied_state"},
    "hosts.networkattachment": {"reported", "in_sync", "out_of_sync"},
    "hosts.hostnic": {"mac", "speed", "mtu", "link_up"},
    "hosts.job": {"status", "started", "finished"},
}
AUDITED = ("networks.datacenter", "networks.cluster", "networks.network",
           "networks.clusternetwork", "networks.vnicprofile", "hosts.host",
           "hosts.portalkeypair", "hosts.bond", "hosts.hostnic", "hosts.networkattachment",
           "hosts.vm", "hosts.vnic", "hosts.job", "hosts.jobhost")


# --- Who is acting ----------------------------------------------------------------------


def source_for_path(path: str) -> str:
    from portal.models import AuditSource

    if path.startswith("/api/"):
        return AuditSource.API
    if path.startswith("/admin/"):
        return AuditSource.ADMIN
    return AuditSource.UI


class AuditMiddleware:
    """Marks every change made while serving a request with its user and entry point."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _actor.set(Actor(source=source_for_path(request.path_info), request=request))
        try:
            return self.get_response(request)
        finally:
            _actor.reset(token)


@contextlib.contextmanager
def acting(source: str, user=None, job_id: int | None = None):
    """Changes made inside are recorded as ``source`` by ``user`` (the worker uses this)."""
    token = _actor.set(Actor(source=source, user=user, job_id=job_id))
    try:
        yield
    finally:
        _actor.reset(token)


_task_tokens: dict[str, contextvars.Token] = {}


def _task_started(sender=None, task_id=None, task=None, args=None, **kwargs):
    from portal.models import AuditSource

    name = getattr(task, "name", "") or ""
    if not name.startswith("hosts."):
        return
    job_id = args[0] if name == "hosts.run_job" and args and isinstance(args[0], int) \
        else None
    _task_tokens[task_id] = _actor.set(Actor(source=AuditSource.WORKER, job_id=job_id))


def _task_finished(sender=None, task_id=None, **kwargs):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            _actor.reset(token)
        except ValueError:  # set in another context (should not happen): just clear it
            _actor.set(None)


def current_actor() -> tuple[str, object, int | None]:
    """(source, user or None, job id or None) of the changes made now."""
    from portal.models import AuditSource

    actor = _actor.get()
    if actor is None:
        return AuditSource.SYSTEM, None, None
    if actor.request is not None:
        user = getattr(actor.request, "user", None)
    else:
        if actor.user is None and actor.job_id and not actor._job_user_read:
            from hosts.models import Job

            actor._job_user_read = True
            job = Job.objects.select_related("created_by").filter(pk=actor.job_id).first()
            actor.user = job.created_by if job is not None else None
        user = actor.user
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return actor.source, user, actor.job_id


# --- What changed -----------------------------------------------------------------------


def label_of(model) -> str:
    return model._meta.label_lower


def snapshot(instance) -> dict:
    """The instance's field values as JSON data, without secrets."""
    excluded = EXCLUDED.get(label_of(type(instance)), set())
    data = {}
    for field in instance._meta.concrete_fields:
        if field.name in excluded or field.primary_key:
            continue
        data[field.name] = field.value_from_object(instance)
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _noise(model) -> set[str]:
    return NOISE["*"] | NOISE.get(label_of(model), set())


def _record(instance, action: str, before: dict, after: dict, job_id=None) -> None:
    from portal.models import AuditEntry

    with transaction.atomic(using=instance._state.db):
        AuditEntry.objects.using(instance._state.db).create(
            **_entry_fields(instance, action, before, after, job_id))


def _entry_fields(instance, action: str, before: dict, after: dict, job_id=None) -> dict:
    """The columns of one AuditEntry about ``instance``, by whoever acts now."""
    from django.contrib.contenttypes.models import ContentType

    source, user, actor_job = current_actor()
    return {"user": user, "username": getattr(user, "username", "") or "", "source": source,
            "action": action, "content_type": ContentType.objects.get_for_model(type(instance)),
            "object_id": instance.pk, "object_repr": str(instance)[:300], "before": before,
            "after": after, "job_id": job_id or actor_job}


def _guard(handler):
    def guarded(sender, instance, **kwargs):
        if kwargs.get("raw"):  # fixtures (loaddata) are not changes
            return
        try:
            handler(sender, instance, **kwargs)
        except Exception:  # never break the change being recorded
            log.exception("audit: cannot record %s %s", label_of(sender),
                          getattr(instance, "pk", None))

    guarded.__name__ = handler.__name__
    return guarded


@_guard
def _pre_save(sender, instance, update_fields=None, **kwargs):
    instance._audit_before = None
    if instance.pk is None or instance._state.adding:
        return
    watched = {f.name for f in sender._meta.concrete_fields} - _noise(sender)
    if update_fields is not None and not (set(update_fields) & watched):
        return  # e.g. a report's write of reported state only: no query, no entry
    stored = sender._base_manager.using(instance._state.db).filter(pk=instance.pk).first()
    instance._audit_before = snapshot(stored) if stored is not None else None


@_guard
def _post_save(sender, instance, created, **kwargs):
    from hosts.choices import JOB_HOST_FINAL_STATUSES
    from portal.models import AuditAction, AuditSource

    label = label_of(sender)
    source, _user, _job = current_actor()
    if label == "hosts.jobhost":
        _record_job_host(instance, JOB_HOST_FINAL_STATUSES)
        return
    if label == "hosts.hostnic" and created and source == AuditSource.WORKER:
        return  # a NIC the host reported (see the module docstring)
    after = snapshot(instance)
    if created:
        _record(instance, AuditAction.CREATE, {}, after,
                job_id=instance.pk if label == "hosts.job" else None)
        return
    before = getattr(instance, "_audit_before", None)
    if before is None:
        return
    noise = _noise(sender)
    changed = sorted(k for k in after if k not in noise and before.get(k) != after[k])
    if changed:
        _record(instance, AuditAction.UPDATE, {k: before.get(k) for k in changed},
                {k: after[k] for k in changed})
    instance._audit_before = None


def _record_job_host(entry, final_statuses) -> None:
    """One entry per host and job when its outcome is final: the plan and what happened."""
    if entry.status in final_statuses:
        record_job_outcomes([entry])


def record_job_outcomes(entries) -> None:
    """The ``apply`` entries of job hosts (JobHost, with ``host`` loaded) whose outcome is
    final, each recorded once, in one insert: the worker finishes many hosts at a time
    with bulk updates, which send no signals, and calls this for them."""
    from hosts.choices import JOB_HOST_FINAL_STATUSES
    from portal.models import AuditAction, AuditEntry

    entries = [e for e in entries if e.status in JOB_HOST_FINAL_STATUSES]
    if not entries:
        return
    # A resumed job saves an outcome again: what was recorded already is left alone.
    recorded = set(AuditEntry.objects.filter(
        job_id__in={e.job_id for e in entries}, action=AuditAction.APPLY,
        object_id__in={e.host_id for e in entries}, content_type__model="host",
    ).values_list("job_id", "object_id"))
    rows = [AuditEntry(**_entry_fields(
        entry.host, AuditAction.APPLY, {"plan": entry.plan},
        {"status": entry.status, "error": entry.error, "result": entry.result,
         "transaction": entry.transaction, "job_host": entry.pk}, job_id=entry.job_id))
        for entry in entries if (entry.job_id, entry.host_id) not in recorded]
    if rows:
        with transaction.atomic():
            AuditEntry.objects.bulk_create(rows)


@_guard
def _post_delete(sender, instance, **kwargs):
    from portal.models import AuditAction, AuditSource

    label = label_of(sender)
    if label == "hosts.jobhost":
        return  # goes with its job or host, both recorded
    source, _user, _job = current_actor()
    if label == "hosts.hostnic" and source == AuditSource.WORKER:
        return
    _record(instance, AuditAction.DELETE, snapshot(instance), {})


def connect() -> None:
    """Connect the receivers to every audited model and to Celery's task signals (called
    from PortalConfig.ready)."""
    from celery.signals import task_postrun, task_prerun
    from django.apps import apps

    task_prerun.connect(_task_started, dispatch_uid="audit:task_prerun", weak=False)
    task_postrun.connect(_task_finished, dispatch_uid="audit:task_postrun", weak=False)

    for label in AUDITED:
        model = apps.get_model(label)
        uid = f"audit:{label}"
        pre_save.connect(_pre_save, sender=model, dispatch_uid=uid + ":pre")
        post_save.connect(_post_save, sender=model, dispatch_uid=uid + ":post")
        post_delete.connect(_post_delete, sender=model, dispatch_uid=uid + ":delete")
