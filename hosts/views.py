"""Pages of hosts, VMs, vNICs and jobs: declarations over portal/views.py, plus the host's
"Setup host networks" page, its actions, and the live job page.

Writes go through hosts/services.py. The setup page keeps its whole request client-side and
posts it as JSON; the same input validation as the API (its request serializer) applies,
then the rules, all at once.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views import View

from hosts import filtersets, forms, presenters, services, state, tables
from hosts.choices import JOB_FINAL_STATUSES, HostKeyState, JobKind
from hosts.models import VM, Host, HostNic, Job, JobHost, JobLog, NetworkAttachment, Vnic
from networks.models import DataCenter
from portal.errors import RuleViolationError
from portal.views import (
    ObjectDeleteView,
    ObjectEditView,
    ObjectListView,
    ObjectMixin,
    ObjectView,
    PortalPermissionMixin,
    object_url,
    related_count,
)

# --- Hosts ------------------------------------------------------------------------------


# The list pages read only the columns of their table (``only``): a host row carries its
# last report and applied state (JSON), and decoding wide rows cost more than the query
# (50 VMs with their hosts: 4.1 ms, against 1.7 ms for the columns shown).


class HostListView(ObjectListView):
    model = Host
    queryset = Host.objects.select_related("cluster").only(
        "name", "address", "cluster__name", "status", "host_key_state", "last_refresh",
    ).annotate(out_of_sync_count=related_count(NetworkAttachment, "host", in_sync=False))
    filterset_class = filtersets.HostFilterSet
    table_class = tables.HostTable
    filter_fields = ("status", "cluster", "datacenter", "host_key_state")
    filter_selects = {"datacenter": DataCenter.objects.all}


class HostView(ObjectView):
    model = Host
    queryset = Host.objects.select_related("cluster__datacenter")
    template_name = "hosts/host.html"

    def extra_context_for(self, obj):
        from hosts import ssh

        return {
            "nics": obj.nics.select_related("bond").order_by("name"),
            "bonds": obj.bonds.prefetch_related(
                Prefetch("slaves", queryset=HostNic.objects.order_by("name"))),
            "attachments": obj.attachments.select_related("network", "nic", "bond")
            .order_by("network__name"),
            "vms": obj.vms.order_by("name"),
            "jobs": Job.objects.filter(hosts__host=obj).order_by("-created")[:8],
            "topology": presenters.topology(obj),
            "public_key": ssh.public_key_line(),
            "key_pending": obj.host_key_state in (HostKeyState.PENDING, HostKeyState.CHANGED),
            "approve_form": forms.ApproveKeyForm(initial={
                "fingerprint": obj.host_key_fingerprint
                if obj.host_key_state == HostKeyState.PENDING else ""}),
        }


class HostEditView(ObjectEditView):
    model = Host
    form_class = forms.HostForm

    def create_service(obj, form, request):
        return services.create_host(obj, user=request.user,
                                    password=form.cleaned_data.get("password") or "")


class HostDeleteView(ObjectDeleteView):
    model = Host


class HostActionView(PortalPermissionMixin, ObjectMixin, View):
    """A button on the host page that queues a job (POST only), then shows the job."""

    model = Host
    action = "change"

    def post(self, request, pk):
        host = self.get_object()
        try:
            job = self.run(host, request)
        except RuleViolationError as exc:
            for violation in exc.violations:
                messages.error(request, violation.message)
            return HttpResponseRedirect(object_url(host))
        if job is None:
            messages.info(request, "Nothing to do.")
            return HttpResponseRedirect(object_url(host))
        return HttpResponseRedirect(object_url(job))


class HostSyncView(HostActionView):
    def run(self, host, request):
        return services.sync_hosts([host], user=request.user,
                                   description=f"Sync all networks of {host.name}")


class HostRefreshView(HostActionView):
    def run(self, host, request):
        return services.refresh_hosts([host], user=request.user)


class HostApproveKeyView(HostActionView):
    def run(self, host, request):
        form = forms.ApproveKeyForm(request.POST)
        fingerprint = form.data.get("fingerprint", "") if not form.is_valid() \
            else form.cleaned_data["fingerprint"]
        return services.approve_host_key(host, fingerprint, user=request.user)


class HostStateView(PortalPermissionMixin, ObjectMixin, View):
    """The host's desired state, to download: JSON (the agent's document) or nmstate YAML."""

    model = Host

    def get(self, request, pk, fmt):
        host = self.get_object()
        document = state.compile_state(host)
        if fmt == "yaml":
            body, content_type = state.nmstate_yaml(document), "application/yaml"
        else:
            body, content_type = json.dumps(document, indent=2) + "\n", "application/json"
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{host.name}-state.{fmt}"'
        return response


# --- Setup host networks ----------------------------------------------------------------


def _violations_json(violations) -> list[dict]:
    return [v.as_dict() for v in violations]


class HostSetupNetworksView(PortalPermissionMixin, ObjectMixin, View):
    """GET: the setup page. POST (JSON): apply the request, answer where to go next."""

    model = Host
    action = "change"
    queryset = Host.objects.select_related("cluster__datacenter")

    def get(self, request, pk):
        host = self.get_object()
        return render(request, "hosts/setup_networks.html", {
            "object": host, "title": f"Setup networks of {host.name}",
            "model": presenters.setup_page_model(host, settings.NETPORTAL_CONNECTIVITY_TIMEOUT),
        })

    def parse(self, request):
        """The request from the page's JSON, validated like the API's; or an error answer."""
        from hosts.api.serializers import SetupNetworksSerializer

        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None, JsonResponse({"ok": False, "violations": [
                {"field": "", "code": "invalid_json", "message": "The request is not JSON."}]},
                status=400)
        serializer = SetupNetworksSerializer(data=data)
        if not serializer.is_valid():
            return None, JsonResponse({"ok": False, "violations": [
                {"field": key, "code": "invalid", "message": f"{key}: {value}"}
                for key, value in serializer.errors.items()]}, status=400)
        return services.setup_request_from_data(serializer.validated_data), None

    def post(self, request, pk):
        host = self.get_object()
        parsed, error = self.parse(request)
        if error:
            return error
        setup, options = parsed
        outcome = services.setup_networks(host, setup, options=options, user=request.user)
        if not outcome.ok:
            return JsonResponse({"ok": False,
                                 "violations": _violations_json(outcome.violations)},
                                status=400)
        if outcome.job is not None:
            messages.success(request, f"Setup of {host.name} queued as job #{outcome.job.pk}.")
            return JsonResponse({"ok": True, "redirect": object_url(outcome.job)})
        return JsonResponse({"ok": True, "redirect": object_url(host)})


class HostSetupPreviewView(HostSetupNetworksView):
    """POST (JSON): every violation, or the changes and the desired-state diff, as HTML."""

    def post(self, request, pk):
        host = self.get_object()
        parsed, error = self.parse(request)
        if error:
            return error
        setup, options = parsed
        preview = services.preview_setup_networks(host, setup, options=options,
                                                  user=request.user)
        if not preview.ok:
            return JsonResponse({"ok": False,
                                 "violations": _violations_json(preview.violations)})
        items, text = presenters.document_diff(preview.before, preview.after)
        html = render_to_string("hosts/setup_preview.html", {
            "host": host, "changes": presenters.describe_changes(preview.host_before,
                                                                 preview.result),
            "interfaces": items, "diff": text, "commands_job": preview.commands_job,
            "options": options,
        }, request=request)
        return JsonResponse({"ok": True, "violations": [], "html": html})


# --- VMs and vNICs ----------------------------------------------------------------------


class VMListView(ObjectListView):
    model = VM
    queryset = VM.objects.select_related("cluster", "host").only(
        "name", "status", "cluster__name", "host__name",
    ).annotate(vnic_count=related_count(Vnic, "vm"))
    filterset_class = filtersets.VMFilterSet
    table_class = tables.VMTable
    filter_fields = ("cluster", "host", "status")
    filter_searches = {"host": "api:host-list"}


class VMView(ObjectView):
    model = VM
    queryset = VM.objects.select_related("cluster", "host")
    template_name = "hosts/vm.html"

    def extra_context_for(self, obj):
        return {"vnics": obj.vnics.select_related("profile__network"),
                "can_add_vnic": self.request.user.has_perm("hosts.add_vnic"),
                "can_change_vnic": self.request.user.has_perm("hosts.change_vnic"),
                "can_delete_vnic": self.request.user.has_perm("hosts.delete_vnic")}


class VMEditView(ObjectEditView):
    model = VM
    form_class = forms.VMForm


class VMDeleteView(ObjectDeleteView):
    model = VM


class VnicBackToVM:
    """A vNIC's pages return to its VM's page."""

    def success_url(self, obj):
        return object_url(obj.vm)

    def cancel_url(self, obj):
        return object_url(obj.vm)


class VnicEditView(VnicBackToVM, ObjectEditView):
    """A vNIC is edited from its VM's page (``vm_pk`` in the URL when adding)."""

    model = Vnic
    form_class = forms.VnicForm
    queryset = Vnic.objects.select_related("vm__cluster", "vm__host")

    def get_instance(self):
        if "pk" in self.kwargs:
            return self.get_object()
        return Vnic(vm=self.vm)

    @property
    def vm(self):
        if "pk" in self.kwargs:
            return self.get_object().vm
        return get_object_or_404(VM.objects.select_related("cluster", "host"),
                                 pk=self.kwargs["vm_pk"])

    def get_form_kwargs(self):
        return {"vm": self.vm}

    def create_service(obj, form, request):
        return services.save_vnic(obj)

    def update_service(obj, form, request):
        return services.save_vnic(obj)

    def cancel_url(self, obj):
        return object_url(self.vm)


class VnicDeleteView(VnicBackToVM, ObjectDeleteView):
    model = Vnic
    queryset = Vnic.objects.select_related("vm")


# --- Jobs -------------------------------------------------------------------------------


class JobListView(ObjectListView):
    model = Job
    queryset = Job.objects.select_related("created_by").only(
        "kind", "status", "description", "created", "finished", "created_by__username",
    ).annotate(host_count=related_count(JobHost, "job"))
    filterset_class = filtersets.JobFilterSet
    table_class = tables.JobTable
    filter_fields = ("kind", "status")


def job_progress_context(job: Job) -> dict:
    """Per host: its entry and its log lines; and whether the page should keep polling."""
    entries = list(JobHost.objects.filter(job=job).select_related("host"))
    logs = list(JobLog.objects.filter(job=job).select_related("host"))
    per_host: dict = {entry.host_id: [] for entry in entries}
    general = []
    for line in logs:
        (per_host[line.host_id] if line.host_id in per_host else general).append(line)
    return {"job": job, "entries": [(e, per_host[e.host_id]) for e in entries],
            "general_logs": general, "running": job.status not in JOB_FINAL_STATUSES}


class JobView(ObjectView):
    model = Job
    queryset = Job.objects.select_related("created_by")
    template_name = "hosts/job.html"

    def extra_context_for(self, obj):
        return job_progress_context(obj)


class JobProgressView(JobView):
    """The job's progress panel alone, polled by htmx every second while the job runs."""

    template_name = "hosts/job_progress.html"


class PreviewCommandsView(JobView):
    """The agent's exact commands of a preview job, polled by htmx until the job ends."""

    queryset = Job.objects.filter(kind=JobKind.PREVIEW)
    template_name = "hosts/inc/preview_commands.html"

    def extra_context_for(self, obj):
        return {"job": obj, "entry": obj.hosts.first(),
                "running": obj.status not in JOB_FINAL_STATUSES}
