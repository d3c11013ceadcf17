"""Base admin: forms that show rule violations as field errors, writes through services."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from portal.auth import ThrottledAdminAuthenticationForm
from portal.errors import RuleViolationError, violations_to_validation_error
from portal.models import AuditEntry

admin.site.login_form = ThrottledAdminAuthenticationForm  # throttled logins (portal/auth.py)


class AuditHistoryMixin:
    """The change page's "History" button shows the object's audit entries (who, when,
    from where, before and after) instead of the admin's own log."""

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, admin.utils.unquote(object_id))
        if obj is None or not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        content_type = ContentType.objects.get_for_model(self.model)
        query = urlencode({"content_type__id__exact": content_type.pk, "object_id": obj.pk})
        return HttpResponseRedirect(
            f"{reverse('admin:portal_auditentry_changelist')}?{query}")


class PortalAdminForm(forms.ModelForm):
    """A ModelForm whose model errors for fields it lacks become non-field errors (so a
    rule about a read-only field still shows its message), and which asks its admin's
    ``check_service`` for the rules that span rows."""

    check_service = None  # set by PortalModelAdmin.get_form

    def _update_errors(self, errors: ValidationError) -> None:
        if hasattr(errors, "error_dict"):
            moved: dict[str, list] = {}
            for field, items in errors.error_dict.items():
                key = field if field in self.fields or field == NON_FIELD_ERRORS \
                    else NON_FIELD_ERRORS
                moved.setdefault(key, []).extend(items)
            errors = ValidationError(moved)
        super()._update_errors(errors)

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.check_service is not None and not self.errors:
            violations = type(self).check_service(self.instance, self)
            if violations:
                self._update_errors(violations_to_validation_error(violations))


class PortalModelAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """A ModelAdmin whose saves and deletes go through the app's services.

    ``check_service(obj, form)`` returns the violations of rules that span rows;
    ``create_service(obj, request)``, ``update_service(obj, form, request)`` and
    ``delete_service(obj, request)`` write. A refusal the form could not foresee (a race)
    shows as an error message, never as a server error.
    """

    form = PortalAdminForm
    check_service = None
    create_service = None
    update_service = None
    delete_service = None

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        check = type(self).check_service
        if check is not None:
            form.check_service = staticmethod(check)
        return form

    def save_model(self, request, obj, form, change):
        service = self.update_service if change else self.create_service
        if service is None:
            return super().save_model(request, obj, form, change)
        if change:
            type(self).update_service(obj, form, request)
        else:
            type(self).create_service(obj, request)

    def delete_model(self, request, obj):
        if self.delete_service is None:
            return super().delete_model(request, obj)
        try:
            type(self).delete_service(obj, request)
        except RuleViolationError as exc:
            for violation in exc.violations:
                self.message_user(request, violation.message, messages.ERROR)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows rows changed elsewhere (through setup networks)."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Shown, never edited: the form must not hold the fields, since some are not
        # editable (e.g. via_label) and a form cannot be built with them.
        return [*super().get_readonly_fields(request, obj), *(self.fields or ())]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The global audit log; filtered to one object from that object's "History" button."""

    list_display = ["timestamp", "username", "source", "action", "content_type",
                    "object_link", "job"]
    list_filter = ["source", "action", "content_type", "timestamp"]
    search_fields = ["object_repr", "username"]
    list_select_related = ["content_type", "job"]
    date_hierarchy = "timestamp"
    fields = ["timestamp", "user", "username", "source", "action", "content_type",
              "object_id", "object_repr", "job", "before", "after"]
    readonly_fields = fields

    @admin.display(description="object")
    def object_link(self, entry):
        query = urlencode({"content_type__id__exact": entry.content_type_id,
                           "object_id": entry.object_id})
        return format_html('<a href="?{}">{}</a>', query, entry.object_repr)

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in {"object_id", "job__id__exact", "user__id__exact"} or \
            super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
