"""`hosts.worker.store_reports`: what hosts reported becomes their NIC rows and their
status, for many hosts in the same few statements."""

from __future__ import annotations

import pytest

from hosts.choices import HostStatus
from hosts.models import HostNic, NetworkAttachment
from hosts.worker import store_reports

pytestmark = pytest.mark.django_db


def nic(name, up=True, mac=None):
    return {"name": name, "type": "ethernet", "mac": mac or f"52:54:00:aa:00:{name[-1]}0",
            "mtu": 1500, "state": "up" if up else "down", "speed": 1000}


def report(*interfaces):
    return {"interfaces": list(interfaces), "managed": [], "routes": {}, "dns": []}


def test_reports_update_nics_and_judge_status_with_the_nics_as_written(cluster, make_host,
                                                                      make_network):
    storage = make_network("storage", cluster, required=True, vm_network=False)
    first, second = make_host(cluster, name="h1"), make_host(cluster, name="h2")
    for host in (first, second):
        NetworkAttachment.objects.create(host=host, network=storage,
                                         nic=host.nics.get(name="eth1"))
    # h1: eth1 (carrying a required network) went down, eth3 is gone, eth4 is new.
    # h2: all up; eth2 and eth3 gone.
    store_reports({
        first.pk: report(nic("eth0"), nic("eth1", up=False), nic("eth2"), nic("eth4")),
        second.pk: report(nic("eth0"), nic("eth1")),
    })
    assert set(first.nics.values_list("name", flat=True)) == {"eth0", "eth1", "eth2", "eth4"}
    assert set(second.nics.values_list("name", flat=True)) == {"eth0", "eth1"}
    assert HostNic.objects.get(host=first, name="eth4").speed == 1000
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == HostStatus.NON_OPERATIONAL
    assert "'eth1' (storage)" in first.status_reason
    assert second.status == HostStatus.UP, second.status_reason

    store_reports({first.pk: report(nic("eth0"), nic("eth1"), nic("eth2"), nic("eth4"))})
    first.refresh_from_db()
    assert first.status == HostStatus.UP, first.status_reason
