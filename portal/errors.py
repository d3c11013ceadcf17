"""Turning rule violations into the errors each entry point shows.

Services raise `RuleViolationError` with the violations of networks/rules.py; forms and the
admin show them as field errors, the API answers 400 with the same codes.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


class RuleViolationError(Exception):
    """A request broke one or more rules; nothing was written."""

    def __init__(self, violations: Iterable):
        self.violations = list(violations)
        super().__init__("; ".join(v.message for v in self.violations))

    def as_validation_error(self, known_fields: Iterable[str] | None = None) -> ValidationError:
        return violations_to_validation_error(self.violations, known_fields)


def violations_to_validation_error(violations, known_fields=None) -> ValidationError:
    """A Django ValidationError keyed by field, each message keeping the rule's code.

    Fields the caller does not know (``known_fields``) go to the non-field errors, so a form
    that lacks the field still shows the message instead of failing.
    """
    errors: dict[str, list[ValidationError]] = {}
    known = set(known_fields) if known_fields is not None else None
    for violation in violations:
        key = violation.field.split("[", 1)[0].split(".", 1)[0] or NON_FIELD_ERRORS
        if known is not None and key not in known:
            key = NON_FIELD_ERRORS
        errors.setdefault(key, []).append(ValidationError(violation.message, code=violation.code))
    return ValidationError(errors)


def raise_for(violations, known_fields=None) -> None:
    """Raise a field-keyed ValidationError when there is any violation (for Model.clean)."""
    violations = list(violations)
    if violations:
        raise violations_to_validation_error(violations, known_fields)
