"""Generic views of the operator pages: list, detail, edit, delete; and the dashboard.

Each model's pages are a few declarations over these (STYLE.md: "about 4 declarative lines
per view"). Every page needs a login and the model's ``view`` permission; writes need
``add``, ``change`` or ``delete``. Writes go through the app's services; a refused write
shows the rules' messages on the form, and nothing is saved.

URL names follow one convention, so the bases can link without per-model code:
``<app>:<model>_list``, ``<app>:<model>``, ``<app>:<model>_add``, ``<app>:<model>_edit`` and
``<app>:<model>_delete``.
"""

from __future__ import annotations

import functools

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    ProtectedError,
    RestrictedError,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.views import View
from django.views.generic import TemplateView

from portal.errors import RuleViolationError

PER_PAGE_CHOICES = (25, 50, 100)


def url_name(model, action: str = "") -> str:
    meta = model._meta
    return f"{meta.app_label}:{meta.model_name}{'_' + action if action else ''}"


_PK_PLACEHOLDER = "7306993485128593"  # digits no URL of the portal holds otherwise


@functools.lru_cache(maxsize=512)
def _pk_url_parts(name: str, prefix: str, urlconf) -> tuple[str, str]:
    head, found, tail = reverse(name, args=[_PK_PLACEHOLDER], urlconf=urlconf).partition(
        _PK_PLACEHOLDER)
    if not found:
        raise ValueError(f"URL {name} does not show its pk argument as given")
    return head, tail


def pk_url(name: str, pk) -> str:
    """``reverse(name, args=[pk])`` for a URL whose only argument is an integer pk.

    Lists link every row: Django's ``reverse()`` costs about 30 µs here, 4.5 ms for a page of
    50 rows with three links each. Each URL name is reversed once (per script prefix and
    URLconf) with a placeholder, and a row's pk goes in its place.
    """
    head, tail = _pk_url_parts(name, get_script_prefix(), get_urlconf())
    return f"{head}{int(pk)}{tail}"


def object_url(obj, action: str = "") -> str:
    """The UI page of ``obj`` (models' ``get_absolute_url`` still points to the admin)."""
    return pk_url(url_name(type(obj), action), obj.pk)


def related_count(model, field: str, **filters):
    """A correlated ``COUNT(*)`` of the ``model`` rows whose ``field`` points at the outer
    row (and that match ``filters``), for ``annotate()``.

    Unlike ``Count("relation")`` it adds no join and no GROUP BY to the outer query: a list
    page sorted by name reads its 50 rows from the name index and counts for those rows
    only, and the paginator's ``count()`` stays a plain ``COUNT(*)`` of the outer table. A
    join counted every related row of the whole table (10,000 attachments for a page of 50
    hosts), and ``Count(distinct=True)`` over two joins multiplied them (hosts x networks).
    """
    rows = (model.objects.filter(**{field: OuterRef("pk")}, **filters).order_by()
            .values(field).annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


class PortalPermissionMixin(LoginRequiredMixin, PermissionRequiredMixin):
    """Login first (anonymous users go to the login page), then the model permission for
    the action (a logged-in user without it gets 403)."""

    model = None
    action = "view"

    def get_permission_required(self):
        if self.permission_required:
            return super().get_permission_required()
        meta = self.model._meta
        return [f"{meta.app_label}.{self.action}_{meta.model_name}"]


class ObjectMixin:
    """Fetch the object named by ``pk`` from ``get_queryset()``."""

    queryset = None

    def get_queryset(self):
        return self.queryset.all() if self.queryset is not None else self.model.objects.all()

    def get_object(self):
        if not hasattr(self, "_object"):
            self._object = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        return self._object


class ObjectListView(PortalPermissionMixin, View):
    """A filtered, searchable, sortable, paginated table of one model.

    Declare ``model`` (or ``queryset``), ``filterset_class`` (the app's, shared with the
    API), ``table_class`` and optionally ``filter_fields`` (the filterset fields shown in
    the side form; ``q`` is always there).
    """

    queryset = None
    filterset_class = None
    table_class = None
    filter_fields: tuple[str, ...] = ()
    # Filters given by pk (``cluster=3``) shown as a select: field -> queryset callable.
    filter_selects: dict = {}
    # Filters over a large table (hosts) shown as a search select: field -> the URL name
    # of its API list (every row in a select was 2,000 options at 2,000 hosts).
    filter_searches: dict = {}
    template_name = "generic/object_list.html"
    per_page = 50

    def get_queryset(self):
        return self.queryset.all() if self.queryset is not None else self.model.objects.all()

    def get(self, request):
        queryset = self.get_queryset()
        filterset = self.filterset_class(request.GET or None, queryset=queryset,
                                         request=request)
        if filterset.is_bound and filterset.is_valid():
            queryset = filterset.qs
        elif filterset.is_bound:
            queryset = queryset.none()
        sort = request.GET.get("sort", "")
        ordering = self.table_class.ordering_for(sort)
        if ordering:
            queryset = queryset.order_by(*ordering)
        elif not queryset.ordered:  # annotated (GROUP BY) querysets drop Meta.ordering
            queryset = queryset.order_by(*(self.model._meta.ordering or ["pk"]))
        try:
            per_page = int(request.GET.get("per_page", self.per_page))
        except ValueError:
            per_page = self.per_page
        per_page = per_page if per_page in PER_PAGE_CHOICES else self.per_page
        page = Paginator(queryset, per_page).get_page(request.GET.get("page"))
        fields = ["q", *self.filter_fields]
        filter_form = self.polish_filter_form(filterset.form)
        query = request.GET.copy()
        for key in ("page", "sort"):
            query.pop(key, None)
        meta = self.model._meta
        return render(request, self.template_name, {
            "model": self.model, "meta": meta,
            "title": str(meta.verbose_name_plural).capitalize(),
            "table": self.table_class(page.object_list, sort=sort), "page": page,
            "filter_fields": [filter_form[f] for f in fields if f in filter_form.fields],
            "filter_media": filter_form.media,
            "filtered": any(request.GET.get(f) for f in fields),
            "query": query.urlencode(), "sort": sort, "per_page": per_page,
            "per_page_choices": PER_PAGE_CHOICES,
            "add_url": _maybe_reverse(url_name(self.model, "add")),
            "can_add": request.user.has_perm(f"{meta.app_label}.add_{meta.model_name}"),
        })


    def polish_filter_form(self, form):
        """The filterset's form as operators read it: pk filters as selects of names (search
        selects over large tables), yes/no filters with "Any", "Data center" in two words;
        Bootstrap classes."""
        from django import forms

        from portal.forms import SearchSelect, bootstrap

        for name, field in form.fields.items():
            if name in self.filter_searches:
                field.widget = SearchSelect(field.queryset, self.filter_searches[name],
                                            empty_label="Any")
            elif name in self.filter_selects:
                objects = self.filter_selects[name]()
                field.widget = forms.Select(choices=[("", "Any")] + [
                    (str(o.pk), str(o)) for o in objects])
            elif isinstance(field.widget, forms.NullBooleanSelect):
                field.widget.choices = [("unknown", "Any"), ("true", "Yes"), ("false", "No")]
            elif isinstance(field.widget, forms.Select) and field.widget.choices:
                choices = list(field.widget.choices)
                if choices and choices[0][0] == "":
                    field.widget.choices = [("", "Any"), *choices[1:]]
            if (field.label or name).lower() == "datacenter":
                field.label = "Data center"
        bootstrap(form)
        return form


def _maybe_reverse(name: str, args=()) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


class ObjectView(PortalPermissionMixin, ObjectMixin, TemplateView):
    """One object's page: ``template_name`` extends ``generic/object.html``; override
    ``extra_context_for(obj)`` for related tables."""

    def extra_context_for(self, obj) -> dict:
        return {}

    def get_context_data(self, **kwargs):
        obj = self.get_object()
        meta = self.model._meta
        perms = self.request.user
        return {
            **super().get_context_data(**kwargs), "object": obj, "meta": meta,
            "list_url": _maybe_reverse(url_name(self.model, "list")),
            "edit_url": _maybe_reverse(url_name(self.model, "edit"), [obj.pk]),
            "delete_url": _maybe_reverse(url_name(self.model, "delete"), [obj.pk]),
            "can_change": perms.has_perm(f"{meta.app_label}.change_{meta.model_name}"),
            "can_delete": perms.has_perm(f"{meta.app_label}.delete_{meta.model_name}"),
            **self.extra_context_for(obj),
        }


class ObjectEditView(PortalPermissionMixin, ObjectMixin, View):
    """Create (no ``pk`` in the URL) or edit one object through a service.

    ``form_class`` is a `PortalModelForm`; ``create_service(obj, form, request)`` and
    ``update_service(obj, form, request)`` write (the default saves the validated form).
    A `RuleViolationError` becomes field errors and nothing is saved.
    """

    form_class = None
    template_name = "generic/object_edit.html"
    create_service = None
    update_service = None

    @property
    def action(self):
        return "change" if "pk" in self.kwargs else "add"

    def get_instance(self):
        return self.get_object() if "pk" in self.kwargs else self.model()

    def get_form_kwargs(self) -> dict:
        """Extra keyword arguments of the form (the instance's parent, say)."""
        return {}

    def initial_from_query(self) -> dict:
        """``?cluster=3`` pre-fills the cluster of a new host (links from parent pages)."""
        return {k: v for k, v in self.request.GET.items() if k != "return_url"}

    def get(self, request, **kwargs):
        form = self.form_class(instance=self.get_instance(), initial=self.initial_from_query(),
                               **self.get_form_kwargs())
        return self.render_form(form)

    def post(self, request, **kwargs):
        instance = self.get_instance()
        form = self.form_class(request.POST, instance=instance, **self.get_form_kwargs())
        if form.is_valid():
            # Read from the class: a service declared as a plain function stays unbound.
            service = (type(self).update_service if "pk" in self.kwargs
                       else type(self).create_service)
            try:
                with transaction.atomic():
                    if service is None:
                        obj = form.save()
                    else:
                        obj = service(form.instance, form, request) or form.instance
            except RuleViolationError as exc:
                self.rolled_back(form)
                form.add_violations(exc)
            except ValidationError as exc:  # a service's full_clean on a field the form lacks
                self.rolled_back(form)
                form._update_errors(exc)
            else:
                verb = "Changed" if "pk" in self.kwargs else "Created"
                messages.success(request, f"{verb} {obj._meta.verbose_name} {obj}.")
                return HttpResponseRedirect(self.success_url(obj))
        return self.render_form(form, status=200)

    def rolled_back(self, form) -> None:
        """The transaction rolled back: a new object saved half-way is new again (so the
        page still says "Add" and a second try inserts)."""
        if "pk" not in self.kwargs:
            form.instance.pk = None
            form.instance._state.adding = True

    def success_url(self, obj) -> str:
        return object_url(obj)

    def render_form(self, form, status=200):
        obj = form.instance
        meta = self.model._meta
        return render(self.request, self.template_name, {
            "form": form, "object": obj if obj.pk else None, "meta": meta,
            "title": f"Edit {meta.verbose_name} {obj}" if obj.pk
            else f"Add a {meta.verbose_name}",
            "cancel_url": self.cancel_url(obj),
        }, status=status)

    def cancel_url(self, obj) -> str | None:
        return object_url(obj) if obj.pk else _maybe_reverse(url_name(self.model, "list"))


class ObjectDeleteView(PortalPermissionMixin, ObjectMixin, View):
    """Confirm, then delete through ``delete_service(obj, request)`` (plain delete by
    default). A refusal (a rule, or rows that protect it) is shown on the confirm page."""

    action = "delete"
    template_name = "generic/object_delete.html"
    delete_service = None

    def get(self, request, **kwargs):
        return self.confirm(self.get_object(), [])

    def post(self, request, **kwargs):
        obj = self.get_object()
        name = str(obj)
        try:
            with transaction.atomic():
                if self.delete_service is None:
                    obj.delete()
                else:
                    type(self).delete_service(obj, request)
        except RuleViolationError as exc:
            return self.confirm(obj, [v.message for v in exc.violations], status=409)
        except (ProtectedError, RestrictedError) as exc:
            rows = getattr(exc, "protected_objects", None) or getattr(
                exc, "restricted_objects", ())
            blocking = sorted({f"{o._meta.verbose_name} {o}" for o in rows})
            return self.confirm(obj, [f"{obj._meta.verbose_name.capitalize()} {name} is "
                                      f"still used by: {', '.join(blocking[:10])}."],
                                status=409)
        messages.success(request, f"Deleted {obj._meta.verbose_name} {name}.")
        return HttpResponseRedirect(self.success_url(obj))

    def success_url(self, obj) -> str:
        return reverse(url_name(self.model, "list"))

    def cancel_url(self, obj) -> str:
        return object_url(obj)

    def confirm(self, obj, errors, status=200):
        return render(self.request, self.template_name, {
            "object": obj, "meta": self.model._meta, "errors": errors,
            "cancel_url": self.cancel_url(obj)}, status=status)


# --- Dashboard --------------------------------------------------------------------------


class DashboardView(LoginRequiredMixin, TemplateView):
    """What an operator checks first: host health, drift, and the work in progress.

    Each panel shows only with the view permission of what it lists.
    """

    template_name = "dashboard.html"
    recent_jobs = 10
    listed = 20

    def get_context_data(self, **kwargs):
        from hosts.choices import HOST_STATUS_BADGES, HostStatus, JobStatus
        from hosts.models import Host, Job, JobHost, NetworkAttachment

        user = self.request.user
        context = super().get_context_data(**kwargs)
        if user.has_perm("hosts.view_host"):
            counts = dict(Host.objects.values_list("status").annotate(n=Count("pk")))
            context["host_statuses"] = [
                (value, label, counts.get(value, 0), HOST_STATUS_BADGES[value])
                for value, label in HostStatus.choices]
            context["host_total"] = sum(counts.values())
            context["non_operational"] = list(
                Host.objects.filter(status=HostStatus.NON_OPERATIONAL)
                .select_related("cluster")[:self.listed])
        if user.has_perm("hosts.view_networkattachment") or user.has_perm("hosts.view_host"):
            context["out_of_sync"] = list(
                NetworkAttachment.objects.filter(in_sync=False)
                .select_related("host", "network", "nic", "bond")
                .order_by("host__name", "network__name")[:self.listed])
            context["out_of_sync_total"] = NetworkAttachment.objects.filter(
                in_sync=False).count()
        if user.has_perm("hosts.view_job"):
            jobs = Job.objects.annotate(host_count=related_count(JobHost, "job"))
            context["running_jobs"] = list(jobs.filter(
                status__in=[JobStatus.PENDING, JobStatus.RUNNING]).order_by("-created")[:20])
            context["recent_jobs"] = list(jobs.exclude(
                status__in=[JobStatus.PENDING, JobStatus.RUNNING])[:self.recent_jobs])
        return context


def crud_urls(prefix: str, list_view, detail, edit, delete) -> list:
    """The five routes of one model's pages, named by the convention above."""
    from django.urls import path

    name = list_view.model._meta.model_name
    return [
        path(f"{prefix}/", list_view.as_view(), name=f"{name}_list"),
        path(f"{prefix}/add/", edit.as_view(), name=f"{name}_add"),
        path(f"{prefix}/<int:pk>/", detail.as_view(), name=name),
        path(f"{prefix}/<int:pk>/edit/", edit.as_view(), name=f"{name}_edit"),
        path(f"{prefix}/<int:pk>/delete/", delete.as_view(), name=f"{name}_delete"),
    ]
