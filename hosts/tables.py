"""Columns of the host, VM and job list pages."""

from hosts.choices import HOST_STATUS_BADGES, HostKeyState, JobStatus
from portal.tables import BadgeColumn, Column, Table

KEY_BADGES = {HostKeyState.APPROVED: "success", HostKeyState.PENDING: "warning",
              HostKeyState.CHANGED: "danger", HostKeyState.UNKNOWN: "secondary"}
JOB_BADGES = {JobStatus.PENDING: "secondary", JobStatus.RUNNING: "primary",
              JobStatus.COMMITTED: "success", JobStatus.PARTIAL: "warning",
              JobStatus.FAILED: "danger"}


class HostTable(Table):
    columns = [
        Column("name", link="hosts:host"),
        Column("address"),
        Column("cluster", order_by="cluster__name", link="networks:cluster",
               link_accessor="cluster"),
        BadgeColumn("status", colours=HOST_STATUS_BADGES),
        BadgeColumn("host_key_state", "Host key", colours=KEY_BADGES),
        Column("out_of_sync_count", "Out of sync"),
        Column("last_refresh", "Last refresh"),
    ]


class VMTable(Table):
    columns = [
        Column("name", link="hosts:vm"),
        Column("cluster", order_by="cluster__name", link="networks:cluster",
               link_accessor="cluster"),
        Column("host", order_by="host__name", link="hosts:host", link_accessor="host"),
        BadgeColumn("status", colours={"up": "success", "down": "secondary"}),
        Column("vnic_count", "vNICs"),
    ]


class JobTable(Table):
    columns = [
        Column("pk", "#", order_by="id", link="hosts:job"),
        Column("kind", render=lambda obj, value: obj.get_kind_display()),
        BadgeColumn("status", colours=JOB_BADGES),
        Column("description", sortable=False),
        Column("host_count", "Hosts"),
        Column("created_by", "By", order_by="created_by__username"),
        Column("created"),
        Column("finished"),
    ]
