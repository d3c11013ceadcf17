"""Base serializer: model invariants (``Model.clean()``) bind the API as they bind forms."""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from portal.api.exceptions import django_error_to_drf


class PkIdentityField(serializers.HyperlinkedIdentityField):
    """The ``url`` of a row, reversed once per list rather than once per row (see
    `portal.views.pk_url`): DRF's reverse and ``build_absolute_uri`` were a third of the
    time of a 50-row list of VMs."""

    def get_url(self, obj, view_name, request, format):
        if format or self.lookup_field != "pk" or self.lookup_url_kwarg != "pk":
            return super().get_url(obj, view_name, request, format)
        if obj.pk is None:
            return None
        from portal.views import pk_url

        path = pk_url(view_name, obj.pk)
        if request is None:
            return path
        # The scheme and host of this request, worked out once (get_host() validates the
        # host against ALLOWED_HOSTS on every call).
        base = getattr(request, "_portal_url_base", None)
        if base is None:
            base = request.build_absolute_uri("/")[:-1]
            request._portal_url_base = base
        return base + path


class PortalModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer that runs ``full_clean()`` on the instance it would save.

    Plain DRF skips ``Model.clean()``; this one builds a copy of the instance with the new
    values, runs the validation the admin runs, and reports each error under its field with
    the rule's code. Writes go through services (see `portal.api.views.PortalModelViewSet`).
    """

    serializer_url_field = PkIdentityField

    def get_validators(self):
        # DRF would add a UniqueTogetherValidator per unique constraint, answering before
        # the rule that covers it (e.g. network_name_not_unique) with a generic "unique".
        # Uniqueness is checked by the model in validate(), after the rules.
        return list(getattr(self.Meta, "validators", []))

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        validators = [v for v in kwargs.get("validators", [])
                      if not isinstance(v, UniqueValidator)]  # see get_validators
        if validators:
            kwargs["validators"] = validators
        else:
            kwargs.pop("validators", None)
        return field_class, kwargs

    def validate(self, attrs):
        attrs = super().validate(attrs)
        instance = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        for key, value in attrs.items():
            setattr(instance, key, value)
        exclude = self.clean_exclude()
        try:
            # Fields and rules first; unique and check constraints only when those pass, so
            # a rule's error is not repeated by the constraint that backs it.
            instance.full_clean(exclude=exclude, validate_unique=False,
                                validate_constraints=False)
            instance.validate_unique(exclude=exclude)
            instance.validate_constraints(exclude=exclude)
        except DjangoValidationError as exc:
            raise django_error_to_drf(exc) from None
        return attrs

    def clean_exclude(self) -> list[str]:
        """Model fields not checked here (set by the service, not by the client)."""
        return []
