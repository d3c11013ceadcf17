"""Pages of data centers, clusters and networks: declarations over portal/views.py.

Writes go through networks/services.py; the base views turn refusals into field errors.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views import View

from hosts import services as host_services
from hosts.models import Host
from networks import filtersets, forms, services, tables
from networks.models import Cluster, ClusterNetwork, DataCenter, Network
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

# --- Data centers -----------------------------------------------------------------------


class DataCenterListView(ObjectListView):
    model = DataCenter
    queryset = DataCenter.objects.annotate(cluster_count=related_count(Cluster, "datacenter"),
                                           network_count=related_count(Network, "datacenter"))
    filterset_class = filtersets.DataCenterFilterSet
    table_class = tables.DataCenterTable


class DataCenterView(ObjectView):
    model = DataCenter
    template_name = "networks/datacenter.html"

    def extra_context_for(self, obj):
        return {"clusters": obj.clusters.annotate(host_count=Count("hosts")),
                "networks": obj.networks.all()}


class DataCenterEditView(ObjectEditView):
    model = DataCenter
    form_class = forms.DataCenterForm

    def create_service(obj, form, request):
        return services.create_datacenter(obj)


class DataCenterDeleteView(ObjectDeleteView):
    model = DataCenter


# --- Clusters ---------------------------------------------------------------------------


class ClusterListView(ObjectListView):
    model = Cluster
    # Two counting subqueries, not one join of hosts x networks (a 2,000-host cluster with
    # 30 networks made the join 60,000 rows per cluster).
    queryset = Cluster.objects.select_related("datacenter").annotate(
        host_count=related_count(Host, "cluster"),
        network_count=related_count(ClusterNetwork, "cluster"))
    filterset_class = filtersets.ClusterFilterSet
    table_class = tables.ClusterTable
    filter_fields = ("datacenter",)


class ClusterView(ObjectView):
    model = Cluster
    queryset = Cluster.objects.select_related("datacenter")
    template_name = "networks/cluster.html"
    hosts_shown = 20  # the rest are one click away, on the host list filtered by cluster

    def extra_context_for(self, obj):
        return {"assignments": host_services.cluster_network_status(obj),
                "hosts": obj.hosts.order_by("name")[:self.hosts_shown],
                "host_count": obj.hosts.count(),
                "can_manage": self.request.user.has_perm("networks.change_clusternetwork")}


class ClusterEditView(ObjectEditView):
    model = Cluster
    form_class = forms.ClusterForm

    def create_service(obj, form, request):
        return services.create_cluster(obj)

    def update_service(obj, form, request):
        return services.update_cluster(obj)


class ClusterDeleteView(ObjectDeleteView):
    model = Cluster


class ManageClusterNetworksView(PortalPermissionMixin, ObjectMixin, View):
    """One table of every network of the data center: assign, require, give roles; saved
    at once through `networks.services.set_cluster_networks`, every refusal shown."""

    model = ClusterNetwork
    queryset = Cluster.objects.select_related("datacenter")
    template_name = "networks/cluster_networks.html"

    def get_permission_required(self):
        if self.request.method == "POST":
            return ["networks.add_clusternetwork", "networks.change_clusternetwork",
                    "networks.delete_clusternetwork"]
        return ["networks.view_clusternetwork"]

    def form(self, data=None):
        cluster = self.get_object()
        return forms.ClusterNetworksForm(
            cluster, cluster.datacenter.networks.order_by("name"),
            cluster.cluster_networks.all(), data)

    def get(self, request, pk):
        return self.show(self.form(), {})

    def post(self, request, pk):
        form = self.form(request.POST)
        errors: dict[int, list[str]] = {}
        if form.is_valid():
            try:
                services.set_cluster_networks(form.cluster, form.wanted())
            except RuleViolationError as exc:
                errors = {pk: [v.message for v in vs] for pk, vs in exc.by_network.items()}
                form.add_error(None, [v.message for v in exc.violations])
            else:
                messages.success(request, f"Saved the networks of cluster {form.cluster}.")
                return HttpResponseRedirect(object_url(form.cluster))
        return self.show(form, errors)

    def show(self, form, errors):
        rows = [(network, assigned, required, radios, errors.get(network.pk, []))
                for network, assigned, required, radios in form.rows()]
        return render(self.request, self.template_name, {
            "object": form.cluster, "form": form, "rows": rows, "roles": form.roles,
            "title": f"Networks of cluster {form.cluster}"})


# --- Networks ---------------------------------------------------------------------------


class NetworkListView(ObjectListView):
    model = Network
    queryset = Network.objects.select_related("datacenter").annotate(
        cluster_count=related_count(ClusterNetwork, "network"))
    filterset_class = filtersets.NetworkFilterSet
    table_class = tables.NetworkTable
    filter_fields = ("datacenter", "vm_network", "cluster")
    filter_selects = {"cluster": Cluster.objects.select_related("datacenter").all}


class NetworkView(ObjectView):
    model = Network
    queryset = Network.objects.select_related("datacenter")
    template_name = "networks/network.html"
    hosts_shown = 20  # the rest are one click away, on the host list filtered by network

    def extra_context_for(self, obj):
        return {
            "assignments": obj.cluster_networks.select_related("cluster"),
            "attachments": obj.attachments.select_related("host", "nic", "bond")
            .order_by("host__name")[:self.hosts_shown],
            "attachment_count": obj.attachments.count(),
            "profiles": obj.vnic_profiles.all(),
        }


class NetworkEditView(ObjectEditView):
    model = Network
    form_class = forms.NetworkForm

    def create_service(obj, form, request):
        return services.create_network(obj)

    def update_service(obj, form, request):
        return services.update_network(obj, user=request.user)


class NetworkDeleteView(ObjectDeleteView):
    model = Network

    def delete_service(obj, request):
        services.delete_network(obj)
