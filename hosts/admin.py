from django.contrib import admin

from hosts import services
from hosts.models import VM, Bond, Host, HostNic, Job, JobHost, JobLog, NetworkAttachment, Vnic
from portal.admin import AuditHistoryMixin, PortalModelAdmin, ReadOnlyInline
from portal.models import AuditEntry

# NICs are what hosts report; bonds, labels and attachments change through "setup host
# networks" (one request checked as a whole), so the admin shows them read-only.


class HostNicInline(ReadOnlyInline):
    model = HostNic
    fields = ["name", "mac", "speed", "mtu", "link_up", "labels", "bond"]


class BondInline(ReadOnlyInline):
    model = Bond
    fields = ["name", "mode", "options", "labels"]


class AttachmentInline(ReadOnlyInline):
    model = NetworkAttachment
    fk_name = "host"
    fields = ["network", "nic", "bond", "ipv4_boot_protocol", "ipv4_address", "in_sync",
              "via_label"]


@admin.register(Host)
class HostAdmin(PortalModelAdmin):
    list_display = ["name", "address", "cluster", "status", "host_key_state", "last_refresh"]
    list_filter = ["status", "host_key_state", "cluster"]
    search_fields = ["name", "address"]
    list_select_related = ["cluster"]
    readonly_fields = ["status", "status_reason", "host_key_type", "host_key_fingerprint",
                       "host_key_state", "last_refresh", "created", "updated"]
    inlines = [HostNicInline, BondInline, AttachmentInline]

    def create_service(obj, request):
        services.create_host(obj, user=request.user)


class ReadOnlyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Rows that only services and workers write."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(HostNic)
class HostNicAdmin(ReadOnlyAdmin):
    list_display = ["name", "host", "mac", "speed", "mtu", "link_up", "bond"]
    list_filter = ["link_up", "host__cluster"]
    search_fields = ["name", "mac", "host__name"]
    list_select_related = ["host", "bond"]


@admin.register(Bond)
class BondAdmin(ReadOnlyAdmin):
    list_display = ["name", "host", "mode", "options"]
    list_filter = ["mode", "host__cluster"]
    search_fields = ["name", "host__name"]
    list_select_related = ["host"]


@admin.register(NetworkAttachment)
class NetworkAttachmentAdmin(ReadOnlyAdmin):
    list_display = ["network", "host", "interface_name", "ipv4_boot_protocol", "ipv4_address",
                    "in_sync", "via_label"]
    list_filter = ["in_sync", "via_label", "ipv4_boot_protocol", "host__cluster"]
    search_fields = ["network__name", "host__name"]
    list_select_related = ["network", "host", "nic", "bond"]


@admin.register(VM)
class VMAdmin(PortalModelAdmin):
    list_display = ["name", "cluster", "host", "status"]
    list_filter = ["status", "cluster"]
    search_fields = ["name"]
    list_select_related = ["cluster", "host"]

    def create_service(obj, request):
        services.save_vm(obj)

    def update_service(obj, form, request):
        services.save_vm(obj)


@admin.register(Vnic)
class VnicAdmin(PortalModelAdmin):
    list_display = ["name", "vm", "profile", "mac", "type", "linked"]
    list_filter = ["type", "linked"]
    search_fields = ["name", "mac", "vm__name"]
    list_select_related = ["vm", "profile"]

    def check_service(obj, form):
        return services.check_vnic(obj)

    def create_service(obj, request):
        services.save_vnic(obj)

    def update_service(obj, form, request):
        services.save_vnic(obj)


class JobHostInline(ReadOnlyInline):
    model = JobHost
    fields = ["host", "status", "started", "finished", "error"]


class JobLogInline(ReadOnlyInline):
    model = JobLog
    fields = ["created", "host", "level", "message"]
    readonly_fields = ["created"]
    show_change_link = False


class JobAuditInline(ReadOnlyInline):
    """Each host's outcome of the job (and the job's creation), from the audit log."""

    model = AuditEntry
    fk_name = "job"
    fields = ["timestamp", "username", "source", "action", "object_repr", "after"]
    show_change_link = False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "status", "description", "created_by", "created",
                    "finished"]
    list_filter = ["kind", "status"]
    search_fields = ["description"]
    list_select_related = ["created_by"]
    inlines = [JobHostInline, JobLogInline, JobAuditInline]
