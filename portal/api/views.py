"""Base API viewset: reads with filters and pagination, writes through services."""

from __future__ import annotations

from rest_framework import viewsets


def with_values(instance, data: dict):
    """``instance`` with the validated values of an update set on it (unsaved): what an
    ``update_service`` hands to the app's service."""
    for key, value in data.items():
        setattr(instance, key, value)
    return instance


class PortalModelViewSet(viewsets.ModelViewSet):
    """A model viewset whose writes call the app's services.

    Subclasses set ``create_service(validated_data, user)``, ``update_service(instance,
    validated_data, user)`` or ``delete_service(instance, user)`` where the action has rules
    or side effects beyond one row; otherwise the serializer saves (after ``full_clean``).
    """

    create_service = None
    update_service = None
    delete_service = None

    def perform_create(self, serializer):
        if self.create_service is None:
            serializer.save()
            return
        serializer.instance = type(self).create_service(serializer.validated_data,
                                                        self.request.user)

    def perform_update(self, serializer):
        if self.update_service is None:
            serializer.save()
            return
        serializer.instance = type(self).update_service(serializer.instance,
                                                        serializer.validated_data,
                                                        self.request.user)

    def perform_destroy(self, instance):
        if self.delete_service is None:
            instance.delete()
            return
        type(self).delete_service(instance, self.request.user)
