"""One shape for every API error, so clients read codes instead of parsing messages.

    {"detail": "...", "code": "...",
     "errors": [{"field": "name", "code": "network_name_starts_with_bond", "message": "..."}]}

Field errors keep the code of the rule that raised them (networks/rules.py), whether they
came from a serializer, ``Model.full_clean()`` or a service.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import RuleViolationError


def _flatten(details, prefix: str = "") -> list[dict]:
    """DRF's nested ``get_full_details()`` as a flat list of field/code/message."""
    if isinstance(details, dict) and "message" in details and "code" in details:
        return [{"field": prefix or "non_field_errors", "code": details["code"],
                 "message": str(details["message"])}]
    items = []
    if isinstance(details, dict):
        for key, value in details.items():
            if isinstance(key, int):  # a list's item (ListField, many=True): "bonds[0]"
                field = f"{prefix}[{key}]"
            else:
                field = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                field = prefix or key
            items += _flatten(value, field)
    elif isinstance(details, list):
        for index, value in enumerate(details):
            nested = isinstance(value, (dict, list)) and not (
                isinstance(value, dict) and "code" in value)
            items += _flatten(value, f"{prefix}[{index}]" if nested else prefix)
    return items


def validation_response(errors: list[dict], detail: str = "Invalid input.") -> Response:
    code = errors[0]["code"] if len(errors) == 1 else "invalid"
    return Response({"detail": detail, "code": code, "errors": errors},
                    status=status.HTTP_400_BAD_REQUEST)


def django_error_to_drf(exc: DjangoValidationError) -> ValidationError:
    """A model's ValidationError as DRF's, keeping each message's code."""
    if hasattr(exc, "error_dict"):
        detail = {
            ("non_field_errors" if field == "__all__" else field): [
                _error_detail(e) for e in errors]
            for field, errors in exc.error_dict.items()
        }
    else:
        detail = [_error_detail(e) for e in exc.error_list]
    return ValidationError(detail)


def _error_detail(error: DjangoValidationError):
    from rest_framework.exceptions import ErrorDetail

    message = error.message % error.params if error.params else error.message
    return ErrorDetail(str(message), code=error.code or "invalid")


def exception_handler(exc, context):
    if isinstance(exc, RuleViolationError):
        return validation_response([v.as_dict() for v in exc.violations])
    if isinstance(exc, DjangoValidationError):
        exc = django_error_to_drf(exc)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        objects = getattr(exc, "protected_objects", None) or exc.restricted_objects
        users = sorted({f"{obj._meta.verbose_name} {obj}" for obj in objects})
        shown = ", ".join(users[:10]) + (" ..." if len(users) > 10 else "")
        return Response({"detail": f"It is still in use by: {shown}.", "code": "in_use",
                         "errors": []}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, IntegrityError):
        # A database constraint caught what validation did not (a race): the request is
        # refused, nothing was written, and the client may retry.
        return Response({"detail": "The change conflicts with another one; retry.",
                         "code": "conflict", "errors": []}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ValidationError):
        return validation_response(_flatten(exc.get_full_details()))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        detail = response.data["detail"]
        response.data = {"detail": str(detail), "code": getattr(detail, "code", "error"),
                         "errors": []}
    return response
