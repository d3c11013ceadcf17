"""Base forms of the operator pages: Bootstrap widgets and rule messages where they belong.

Forms hold no rules of their own (DESIGN.md): the model's ``clean()`` and the services
decide, and their violations land on the field they name, or above the form when the form
has no such field.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


def bootstrap(form: forms.BaseForm) -> None:
    """Give every widget its Bootstrap class (and ``is-invalid`` when it has errors), so
    templates render fields with one include and keyboard focus rings look alike."""
    for name, field in form.fields.items():
        widget = field.widget
        if isinstance(widget, forms.CheckboxInput):
            css = "form-check-input"
        elif isinstance(widget, forms.Select | forms.SelectMultiple):
            css = "form-select"
        else:
            css = "form-control"
        # ``_errors`` rather than ``errors``: reading ``errors`` would validate the form
        # (from __init__, before subclasses finished setting up their fields).
        if form._errors and name in form._errors:
            css += " is-invalid"
        widget.attrs["class"] = css
        if isinstance(widget, forms.Textarea):
            widget.attrs["rows"] = 3  # descriptions are short; Django's 10 rows push the form down


class PortalForm(forms.Form):
    """A plain form with Bootstrap widgets."""

    def full_clean(self):
        super().full_clean()
        bootstrap(self)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bootstrap(self)


class PortalModelForm(forms.ModelForm):
    """A ModelForm whose model errors for fields it lacks become non-field errors.

    ``Model.clean()`` reports rules by model field; a rule about a field this form does not
    show (the on-host name, say) must still reach the operator instead of raising.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bootstrap(self)

    def full_clean(self):
        super().full_clean()
        bootstrap(self)

    def _update_errors(self, errors: ValidationError) -> None:
        if hasattr(errors, "error_dict"):
            moved: dict[str, list] = {}
            for field, items in errors.error_dict.items():
                key = field if field in self.fields else NON_FIELD_ERRORS
                moved.setdefault(key, []).extend(items)
            errors = ValidationError(moved)
        super()._update_errors(errors)

    def add_violations(self, exc) -> None:
        """Show a service's `RuleViolationError` on the fields its violations name."""
        error = exc.as_validation_error(self.fields)
        for field, items in error.error_dict.items():
            self.add_error(None if field == NON_FIELD_ERRORS else field, items)
        bootstrap(self)


class SearchSelect(forms.Select):
    """A select over a large table (hosts) that renders only the empty choice and the chosen
    row; ``static/js/search_select.js`` adds a search box that asks the API list at
    ``api_url`` (``?q=...&limit=...``) for the first matches as the operator types, like
    NetBox's dynamic selects.

    A plain select listed every row: the VM list's host filter was 2,000 options (100 kB
    and 90 ms of rendering a page at 2,000 hosts). Without the script the page still works
    with the chosen row (a filtered link keeps its filter). ``depends`` names another field
    of the form whose value narrows the search (``cluster``: the hosts of that cluster).
    """

    class Media:
        js = ("js/search_select.js",)

    def __init__(self, queryset, api_url: str, *, label_field: str = "name",
                 empty_label: str = "---------", depends: str = "", attrs=None):
        super().__init__(attrs)
        self.queryset = queryset
        self.api_url = api_url
        self.label_field = label_field  # the API field shown for a row (as str(row) here)
        self.empty_label = empty_label
        self.depends = depends

    def __deepcopy__(self, memo):
        copy = super().__deepcopy__(memo)
        copy.queryset = self.queryset  # a queryset is not copied (nor evaluated) per form
        return copy

    def get_context(self, name, value, attrs):
        from django.urls import reverse

        from portal.filters import ID_MAX

        attrs = {**(attrs or {}), "data-search-url": reverse(self.api_url),
                 "data-search-label": self.label_field}
        if self.depends:
            attrs["data-search-depends"] = self.depends
        values = [v for v in self.format_value(value) if v.isdigit() and int(v) <= ID_MAX]
        chosen = self.queryset.filter(pk__in=values) if values else []
        self.choices = [("", self.empty_label), *((str(o.pk), str(o)) for o in chosen)]
        return super().get_context(name, value, attrs)
