"""Filters of the hosts app, shared by the list pages and the API."""

from hosts.models import VM, Bond, Host, HostNic, Job, NetworkAttachment, Vnic
from networks.filtersets import SearchFilterSet
from portal.filters import IdFilter


class HostFilterSet(SearchFilterSet):
    search_fields = ("name", "address")
    datacenter = IdFilter(field_name="cluster__datacenter", label="Data center")
    # Hosts carrying a network (one attachment per host and network: no duplicates).
    network = IdFilter(field_name="attachments__network", label="Network")

    class Meta:
        model = Host
        fields = {"name": ["exact", "icontains"], "cluster": ["exact"], "status": ["exact"],
                  "host_key_state": ["exact"], "address": ["exact"]}


class HostNicFilterSet(SearchFilterSet):
    search_fields = ("name", "mac", "host__name")

    class Meta:
        model = HostNic
        fields = {"host": ["exact"], "name": ["exact"], "mac": ["exact"], "bond": ["exact"],
                  "host__cluster": ["exact"], "link_up": ["exact"]}


class BondFilterSet(SearchFilterSet):
    search_fields = ("name", "host__name")

    class Meta:
        model = Bond
        fields = {"host": ["exact"], "name": ["exact"], "mode": ["exact"],
                  "host__cluster": ["exact"]}


class NetworkAttachmentFilterSet(SearchFilterSet):
    search_fields = ("network__name", "host__name")

    class Meta:
        model = NetworkAttachment
        fields = {"host": ["exact"], "network": ["exact"], "in_sync": ["exact"],
                  "host__cluster": ["exact"], "nic": ["exact"], "bond": ["exact"]}


class VMFilterSet(SearchFilterSet):
    class Meta:
        model = VM
        fields = {"name": ["exact", "icontains"], "cluster": ["exact"], "host": ["exact"],
                  "status": ["exact"]}


class VnicFilterSet(SearchFilterSet):
    search_fields = ("name", "mac", "vm__name")

    class Meta:
        model = Vnic
        fields = {"vm": ["exact"], "profile": ["exact"], "mac": ["exact"],
                  "profile__network": ["exact"]}


class JobFilterSet(SearchFilterSet):
    search_fields = ("description",)
    host = IdFilter(field_name="hosts__host", label="Host", distinct=True)

    class Meta:
        model = Job
        fields = {"kind": ["exact"], "status": ["exact"]}
