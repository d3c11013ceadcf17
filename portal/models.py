"""The portal's own rows: the audit log of every change to the product's objects."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditSource(models.TextChoices):
    UI = "ui", "Operator pages"
    API = "api", "REST API"
    ADMIN = "admin", "Django admin"
    WORKER = "worker", "Worker"
    SYSTEM = "system", "System (shell, command, migration)"


class AuditAction(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    DELETE = "delete", "Deleted"
    APPLY = "apply", "Applied to host"


class AuditEntry(models.Model):
    """One change of one object: who, when, through which entry point, before and after.

    Written by portal/audit.py from model signals, in the transaction of the change (a
    rolled-back change leaves no entry). ``before``/``after`` hold the changed fields of an
    update, every field of a create (after) or a delete (before); secrets are never stored.
    An ``apply`` entry is one host's final outcome of a job (its JobHost), linked to the job.
    Rows are append-only: nothing in the product updates or deletes them (the admin and the
    API refuse writes whatever the permissions say).
    """

    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True,
                                help_text="Kept when the user is deleted.")
    source = models.CharField(max_length=8, choices=AuditSource.choices)
    action = models.CharField(max_length=8, choices=AuditAction.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.BigIntegerField()
    object_repr = models.CharField(max_length=300)
    before = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    job = models.ForeignKey("hosts.Job", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="audit_entries")

    class Meta:
        ordering = ["-timestamp", "-pk"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["content_type", "object_id", "-timestamp"],
                                name="audit_object")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.content_type.model} {self.object_repr}"
