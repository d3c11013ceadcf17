"""Columns of the networks list pages."""

from portal.tables import BooleanColumn, Column, Table


class DataCenterTable(Table):
    columns = [
        Column("name", link="networks:datacenter"),
        Column("description", sortable=False),
        Column("cluster_count", "Clusters"),
        Column("network_count", "Networks"),
    ]


class ClusterTable(Table):
    columns = [
        Column("name", link="networks:cluster"),
        Column("datacenter", "Data center", order_by="datacenter__name",
               link="networks:datacenter", link_accessor="datacenter"),
        Column("host_count", "Hosts"),
        Column("network_count", "Networks"),
        Column("mac_pool_start", "MAC pool from", sortable=False),
        Column("mac_pool_end", "MAC pool to", sortable=False),
    ]


class NetworkTable(Table):
    columns = [
        Column("name", link="networks:network"),
        Column("datacenter", "Data center", order_by="datacenter__name",
               link="networks:datacenter", link_accessor="datacenter"),
        Column("vlan", "VLAN"),
        Column("mtu", "MTU", render=lambda obj, value: value or f"default ({obj.effective_mtu})"),
        BooleanColumn("vm_network", "VM network"),
        Column("label"),
        Column("on_host_name", "On host"),
        Column("cluster_count", "Clusters"),
    ]
