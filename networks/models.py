"""Data centers, clusters, logical networks, their cluster assignments and vNIC profiles.

Invariants that one row can check live in ``clean()`` (through networks/rules.py) and, where
the database can hold them, in named constraints. Creation side effects (``ovirtmgmt`` for a
new data center, the management assignment of a new cluster, default vNIC profiles) belong
to networks/services.py, never to ``save()``.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.urls import reverse

from networks import constants as c
from networks import rules
from portal.errors import raise_for


class PortalModel(models.Model):
    """Common columns: creation and change times."""

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def get_absolute_url(self) -> str:
        return reverse(f"admin:{self._meta.app_label}_{self._meta.model_name}_change",
                       args=[self.pk])


class DataCenter(PortalModel):
    """The top of the hierarchy, where logical networks are defined."""

    name = models.CharField(max_length=c.DATACENTER_NAME_MAX, unique=True)
    description = models.TextField(max_length=c.DESCRIPTION_MAX, blank=True)
    is_demo = models.BooleanField(
        default=False, editable=False, help_text="Loaded by the demo inventory command."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        others = DataCenter.objects.exclude(pk=self.pk).values_list("name", flat=True)
        raise_for(rules.check_datacenter(self.name or "", others))


class Cluster(PortalModel):
    """A group of hosts sharing networks; hosts take vNIC MACs from its MAC pool."""

    datacenter = models.ForeignKey(DataCenter, on_delete=models.PROTECT, related_name="clusters")
    name = models.CharField(max_length=c.CLUSTER_NAME_MAX)
    description = models.TextField(max_length=c.DESCRIPTION_MAX, blank=True)
    mac_pool_start = models.CharField(max_length=17, default="56:6f:00:00:00:00")
    mac_pool_end = models.CharField(max_length=17, default="56:6f:00:00:ff:ff")

    class Meta:
        ordering = ["datacenter__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["datacenter", "name"],
                                    name="cluster_unique_name_in_datacenter"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        others = []
        if self.datacenter_id:
            others = Cluster.objects.filter(datacenter_id=self.datacenter_id).exclude(
                pk=self.pk).values_list("name", flat=True)
        raise_for(rules.check_cluster(self.name or "", others, self.mac_pool_start or "",
                                      self.mac_pool_end or ""))


class Network(PortalModel):
    """A logical network of a data center: a bridge (VM network) or bare addresses on hosts.

    ``on_host_name`` is the name of the bridge or interface on hosts; it is computed once at
    creation (RULES.md) and stored, never recomputed, so a rename never renames devices.
    """

    # A data center leaves with its networks; its clusters (PROTECT) keep it while any exist.
    datacenter = models.ForeignKey(DataCenter, on_delete=models.CASCADE, related_name="networks")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=c.NETWORK_NAME_MAX)
    description = models.TextField(max_length=c.DESCRIPTION_MAX, blank=True)
    # Plain integer fields: the ranges are rules (networks/rules.py) with their own codes,
    # and named check constraints below; field validators would answer first, with others.
    vlan = models.IntegerField(null=True, blank=True, verbose_name="VLAN",
                               help_text="Empty for an untagged network.")
    mtu = models.IntegerField(default=0, verbose_name="MTU",
                              help_text=f"0 means the default ({c.MTU_DEFAULT}).")
    vm_network = models.BooleanField(default=True, verbose_name="VM network",
                                     help_text="Implemented as a bridge that VMs connect to.")
    stp = models.BooleanField(default=False, verbose_name="STP")
    label = models.CharField(max_length=c.LABEL_MAX, blank=True, default="")
    dns_servers = models.JSONField(default=list, blank=True, verbose_name="DNS servers")
    qos_outbound_average = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="QoS outbound average (Mbps)",
        help_text="Host network QoS; empty for none.",
    )
    on_host_name = models.CharField(max_length=c.IFNAME_MAX, editable=False)

    class Meta:
        ordering = ["datacenter__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["datacenter", "name"],
                                    name="network_unique_name_in_datacenter"),
            models.UniqueConstraint(fields=["datacenter", "on_host_name"],
                                    name="network_unique_on_host_name_in_datacenter"),
            models.CheckConstraint(
                condition=Q(vlan__isnull=True) | Q(vlan__gte=c.VLAN_MIN, vlan__lte=c.VLAN_MAX),
                name="network_vlan_range"),
            models.CheckConstraint(
                condition=Q(mtu=0) | Q(mtu__gte=c.MTU_MIN, mtu__lte=c.MTU_MAX),
                name="network_mtu_range"),
            models.CheckConstraint(condition=Q(stp=False) | Q(vm_network=True),
                                   name="network_stp_only_on_vm_network"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_mtu(self) -> int:
        return self.mtu or c.MTU_DEFAULT

    def compute_on_host_name(self) -> str:
        return rules.on_host_name(self.name, self.uuid.hex)

    def clean(self) -> None:
        if not self.on_host_name and self.name:
            self.on_host_name = self.compute_on_host_name()
        others = Network.objects.none()
        if self.datacenter_id:
            others = Network.objects.filter(datacenter_id=self.datacenter_id).exclude(pk=self.pk)
        pairs = list(others.values_list("name", "on_host_name"))
        raise_for(rules.check_network(
            name=self.name or "", description=self.description or "", vlan=self.vlan,
            mtu=self.mtu if self.mtu is not None else 0, vm_network=self.vm_network,
            stp=self.stp, label=self.label or None,
            dns_servers=list(self.dns_servers or []), on_host_name=self.on_host_name,
            other_names=[n for n, _ in pairs], other_on_host_names=[h for _, h in pairs],
        ))

    def as_rule_data(self, assignment: ClusterNetwork | None = None) -> rules.NetworkData:
        """This network as the rules see it, in the cluster of ``assignment`` (if any)."""
        return rules.NetworkData(
            name=self.name, vm_network=self.vm_network, vlan=self.vlan, mtu=self.mtu,
            label=self.label or None, in_cluster=assignment is not None,
            required=bool(assignment and assignment.required),
            roles=assignment.roles if assignment else frozenset(),
            has_qos=self.qos_outbound_average is not None,
        )


# Role -> the boolean column that holds it on ClusterNetwork.
ROLE_FLAGS = {
    c.ROLE_MANAGEMENT: "is_management",
    c.ROLE_DISPLAY: "is_display",
    c.ROLE_MIGRATION: "is_migration",
    c.ROLE_DEFAULT_ROUTE: "is_default_route",
}


class ClusterNetwork(PortalModel):
    """A network assigned to a cluster: required or optional, with its roles there.

    Each role is held by one network of the cluster (named partial unique constraints).
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="cluster_networks")
    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="cluster_networks")
    required = models.BooleanField(default=True)
    is_management = models.BooleanField(default=False, verbose_name="management")
    is_display = models.BooleanField(default=False, verbose_name="display")
    is_migration = models.BooleanField(default=False, verbose_name="migration")
    is_default_route = models.BooleanField(default=False, verbose_name="default route")

    class Meta:
        ordering = ["cluster__name", "network__name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "network"],
                                    name="clusternetwork_unique_network_in_cluster"),
            *[
                models.UniqueConstraint(fields=["cluster"], condition=Q(**{flag: True}),
                                        name=f"clusternetwork_one_{role}_per_cluster")
                for role, flag in ROLE_FLAGS.items()
            ],
            models.CheckConstraint(condition=Q(is_management=False) | Q(required=True),
                                   name="clusternetwork_management_required"),
        ]

    def __str__(self) -> str:
        return f"{self.network} in {self.cluster}"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(role for role, flag in ROLE_FLAGS.items() if getattr(self, flag))

    def set_roles(self, roles) -> None:
        for role, flag in ROLE_FLAGS.items():
            setattr(self, flag, role in roles)

    def as_rule_data(self) -> rules.ClusterNetworkData:
        return rules.ClusterNetworkData(network=self.network.name, required=self.required,
                                        roles=self.roles)


class VnicProfile(PortalModel):
    """A named way for VM vNICs to connect to a VM network (the default one has its name)."""

    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="vnic_profiles")
    name = models.CharField(max_length=c.NETWORK_NAME_MAX)
    description = models.TextField(max_length=c.DESCRIPTION_MAX, blank=True)

    class Meta:
        ordering = ["network__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["network", "name"],
                                    name="vnicprofile_unique_name_in_network"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.network_id:
            return
        network = self.network
        others = VnicProfile.objects.filter(network_id=self.network_id).exclude(pk=self.pk)
        network_changed = False
        if self.pk:
            network_changed = (VnicProfile.objects.filter(pk=self.pk)
                               .exclude(network_id=self.network_id).exists())
        raise_for(rules.check_vnic_profile(
            name=self.name or "", network_name=network.name, network_is_vm=network.vm_network,
            other_profile_names_on_network=list(others.values_list("name", flat=True)),
            network_changed=network_changed,
        ))
