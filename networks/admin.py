from django.contrib import admin

from networks import services
from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile
from portal.admin import PortalModelAdmin, ReadOnlyInline


class ClusterInline(ReadOnlyInline):
    model = Cluster
    fields = ["name", "description"]


@admin.register(DataCenter)
class DataCenterAdmin(PortalModelAdmin):
    list_display = ["name", "description", "is_demo", "created"]
    list_filter = ["is_demo"]
    search_fields = ["name", "description"]
    readonly_fields = ["is_demo", "created", "updated"]
    inlines = [ClusterInline]

    def create_service(obj, request):
        services.create_datacenter(obj)


class ClusterNetworkInline(ReadOnlyInline):
    model = ClusterNetwork
    fields = ["network", "required", "is_management", "is_display", "is_migration",
              "is_default_route"]


@admin.register(Cluster)
class ClusterAdmin(PortalModelAdmin):
    list_display = ["name", "datacenter", "mac_pool_start", "mac_pool_end"]
    list_filter = ["datacenter"]
    search_fields = ["name", "description"]
    list_select_related = ["datacenter"]
    readonly_fields = ["created", "updated"]
    inlines = [ClusterNetworkInline]

    def get_readonly_fields(self, request, obj=None):
        # A cluster never moves to another data center (its networks stay behind).
        return [*self.readonly_fields, "datacenter"] if obj else self.readonly_fields

    def create_service(obj, request):
        services.create_cluster(obj)

    def update_service(obj, form, request):
        services.update_cluster(obj)


@admin.register(Network)
class NetworkAdmin(PortalModelAdmin):
    list_display = ["name", "datacenter", "vlan", "mtu", "vm_network", "label",
                    "on_host_name"]
    list_filter = ["datacenter", "vm_network", "stp"]
    search_fields = ["name", "description", "label", "on_host_name"]
    list_select_related = ["datacenter"]
    readonly_fields = ["on_host_name", "uuid", "created", "updated"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "datacenter"] if obj else self.readonly_fields

    def check_service(obj, form):
        return services.check_network_update(obj) if obj.pk else []

    def create_service(obj, request):
        services.create_network(obj)

    def update_service(obj, form, request):
        services.update_network(obj, user=request.user)

    def delete_service(obj, request):
        services.delete_network(obj)


@admin.register(ClusterNetwork)
class ClusterNetworkAdmin(PortalModelAdmin):
    list_display = ["network", "cluster", "required", "is_management", "is_display",
                    "is_migration", "is_default_route"]
    list_filter = ["cluster", "required", "is_management", "is_display", "is_migration",
                   "is_default_route"]
    search_fields = ["network__name", "cluster__name"]
    list_select_related = ["network", "cluster"]

    def get_readonly_fields(self, request, obj=None):
        return ["cluster", "network"] if obj else []

    def check_service(obj, form):
        if not obj.pk:
            return services.check_attach_network(obj.cluster, obj.network,
                                                 required=obj.required, roles=obj.roles)
        return services.check_cluster_network_update(obj, required=obj.required,
                                                     roles=obj.roles)

    def create_service(obj, request):
        created = services.attach_network(obj.cluster, obj.network, required=obj.required,
                                          roles=obj.roles)
        obj.pk = created.pk

    def update_service(obj, form, request):
        services.update_cluster_network(obj, required=obj.required, roles=obj.roles)

    def delete_service(obj, request):
        services.detach_network(obj)


@admin.register(VnicProfile)
class VnicProfileAdmin(PortalModelAdmin):
    list_display = ["name", "network", "description"]
    list_filter = ["network__datacenter"]
    search_fields = ["name", "network__name"]
    list_select_related = ["network"]
