"""Filters of the networks app, shared by the list pages and the API."""

import django_filters

from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile
from portal.filters import IdFilter


class SearchFilterSet(django_filters.FilterSet):
    """A filterset with ``q``: a case-insensitive search over ``search_fields``."""

    search_fields: tuple[str, ...] = ("name",)
    q = django_filters.CharFilter(method="search", label="Search")

    def search(self, queryset, name, value):
        from django.db.models import Q

        query = Q()
        for field in self.search_fields:
            query |= Q(**{f"{field}__icontains": value.strip()})
        return queryset.filter(query) if value.strip() else queryset


class DataCenterFilterSet(SearchFilterSet):
    search_fields = ("name", "description")

    class Meta:
        model = DataCenter
        fields = {"name": ["exact", "icontains"]}


class ClusterFilterSet(SearchFilterSet):
    search_fields = ("name", "description")

    class Meta:
        model = Cluster
        fields = {"name": ["exact", "icontains"], "datacenter": ["exact"]}


class NetworkFilterSet(SearchFilterSet):
    search_fields = ("name", "description", "label", "on_host_name")
    cluster = IdFilter(field_name="cluster_networks__cluster", label="Cluster")

    class Meta:
        model = Network
        fields = {"name": ["exact", "icontains"], "datacenter": ["exact"],
                  "vm_network": ["exact"], "vlan": ["exact", "isnull"], "label": ["exact"],
                  "on_host_name": ["exact"]}


class ClusterNetworkFilterSet(SearchFilterSet):
    search_fields = ("network__name", "cluster__name")

    class Meta:
        model = ClusterNetwork
        fields = {"cluster": ["exact"], "network": ["exact"], "required": ["exact"],
                  "is_management": ["exact"], "is_display": ["exact"],
                  "is_migration": ["exact"], "is_default_route": ["exact"]}


class VnicProfileFilterSet(SearchFilterSet):
    search_fields = ("name", "network__name")

    class Meta:
        model = VnicProfile
        fields = {"name": ["exact", "icontains"], "network": ["exact"],
                  "network__datacenter": ["exact"]}
