"""`hosts.services.set_nic_labels`: labelling a NIC attaches the cluster's networks with that
label to it, moving the label moves them, removing it detaches them (RULES.md "Labels")."""

from __future__ import annotations

import pytest

from hosts import services as host_services
from hosts.models import NetworkAttachment

pytestmark = pytest.mark.django_db


def carried(host) -> dict[str, str]:
    return {a.network.name: a.interface_name
            for a in NetworkAttachment.objects.filter(host=host).select_related(
                "network", "nic", "bond")}


def test_label_attaches_moves_and_detaches_the_labelled_networks(cluster, make_host,
                                                                 make_network):
    make_network("storage", cluster, required=False, vm_network=False, label="san", vlan=10)
    make_network("backup", cluster, required=False, vm_network=False, label="san", vlan=20)
    make_network("public", cluster, required=False, label="wan")
    host = make_host(cluster)

    outcome = host_services.set_nic_labels(host, "eth1", {"san"})
    assert outcome.ok, outcome.violations
    assert carried(host) == {"ovirtmgmt": "eth0", "storage": "eth1", "backup": "eth1"}
    assert host.nics.get(name="eth1").labels == ["san"]
    assert outcome.job is not None  # pushed to the host

    assert host_services.set_nic_labels(host, "eth1", set()).ok
    assert host_services.set_nic_labels(host, "eth2", {"san"}).ok
    assert carried(host) == {"ovirtmgmt": "eth0", "storage": "eth2", "backup": "eth2"}

    assert host_services.set_nic_labels(host, "eth2", set()).ok
    assert carried(host) == {"ovirtmgmt": "eth0"}


def test_a_refused_label_changes_nothing(cluster, make_host, make_network):
    make_network("storage", cluster, required=False, vm_network=False, label="san")
    host = make_host(cluster)
    assert host_services.set_nic_labels(host, "eth1", {"san"}).ok
    outcome = host_services.set_nic_labels(host, "eth3", {"san"})  # already on eth1
    assert not outcome.ok
    assert "label_on_several_interfaces" in {v.code for v in outcome.violations}
    assert carried(host) == {"ovirtmgmt": "eth0", "storage": "eth1"}
    outcome = host_services.set_nic_labels(host, "eth9", {"other"})
    assert [v.code for v in outcome.violations] == ["interface_unknown"]
    assert host.nics.get(name="eth3").labels == []
