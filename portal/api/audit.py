"""The audit log in the API: ``GET /api/audit/`` (everything, newest first) and
``GET /api/audit/?object_type=networks.network&object_id=3`` (one object's history)."""

from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets

from portal.api.serializers import PkIdentityField
from portal.filters import IdFilter
from portal.models import AuditAction, AuditEntry, AuditSource


class AuditEntrySerializer(serializers.ModelSerializer):
    serializer_url_field = PkIdentityField
    object_type = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["id", "url", "timestamp", "user", "username", "source", "action", "object_type",
                  "object_id", "object_repr", "before", "after", "job"]
        read_only_fields = fields
        extra_kwargs = {"url": {"view_name": "api:auditentry-detail"}}

    def get_object_type(self, entry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"


class AuditEntryFilterSet(django_filters.FilterSet):
    object_type = django_filters.CharFilter(
        method="filter_object_type", help_text="app_label.model, e.g. networks.network")
    object_id = IdFilter()
    source = django_filters.ChoiceFilter(choices=AuditSource.choices)
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    job = IdFilter(field_name="job_id")
    user = IdFilter(field_name="user_id")

    class Meta:
        model = AuditEntry
        fields = ["object_type", "object_id", "source", "action", "job", "user"]

    def filter_object_type(self, queryset, name, value):
        app_label, _, model = value.strip().lower().partition(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Every recorded change: who, when, through which entry point, before and after."""

    queryset = AuditEntry.objects.select_related("content_type")
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    ordering_fields = ["timestamp", "id"]
