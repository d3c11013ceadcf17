"""Filters shared by the apps' filtersets (API and operator pages)."""

from __future__ import annotations

import django_filters
from django import forms

ID_MAX = 2**63 - 1  # a 64-bit primary key (BigAutoField) on every database


class IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(*args, **kwargs)


class IdFilter(django_filters.NumberFilter):
    """A row id: a whole number in 1..2**63-1, else the filter is invalid (400 in the API).

    django-filter's NumberFilter takes any decimal: ``?host=1e40`` reached the database as an
    integer that SQLite cannot hold and the lookup failed with a server error (found by
    tests/security/test_api_fuzz.py).
    """

    field_class = IdField
