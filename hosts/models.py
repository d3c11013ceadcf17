"""Hosts and what they carry: NICs, bonds, network attachments, VMs and vNICs; and jobs.

NICs are what the host reports; bonds and attachments are what the portal wants (with the
last reported values beside them, to compute the sync state). A job is one operation over
one or more hosts, written before its task is queued, with one entry per host.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from hosts.choices import (
    JOB_HOST_ACTIVE_STATUSES,
    HostKeyState,
    HostStatus,
    JobHostStatus,
    JobKind,
    JobStatus,
    LogLevel,
    VmStatus,
)
from networks import constants as c
from networks import rules
from networks.choices import BondMode, BootProtocol, VnicType
from networks.models import Cluster, Network, PortalModel, VnicProfile
from portal.errors import raise_for


class Host(PortalModel):
    """A hypervisor host of a cluster, reached over SSH, whose kernel networks we configure.

    The SSH host key is pinned here: recorded as pending when first seen, used only once an
    operator approved it (or it matched ``expected_fingerprint`` given when adding the host).
    """

    name = models.CharField(max_length=255, unique=True)
    address = models.CharField(max_length=255, help_text="Host name or IP address for SSH.")
    ssh_port = models.PositiveIntegerField(
        default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    ssh_user = models.CharField(max_length=64, default="root")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="hosts")
    status = models.CharField(max_length=20, choices=HostStatus.choices,
                              default=HostStatus.INSTALLING, editable=False)
    status_reason = models.TextField(blank=True, editable=False)
    host_key_type = models.CharField(max_length=64, blank=True, editable=False)
    host_key = models.TextField(blank=True, editable=False, help_text="Base64 public key.")
    host_key_fingerprint = models.CharField(max_length=100, blank=True, editable=False)
    host_key_state = models.CharField(max_length=10, choices=HostKeyState.choices,
                                      default=HostKeyState.UNKNOWN, editable=False)
    expected_fingerprint = models.CharField(
        max_length=100, blank=True,
        help_text="SHA256:... fingerprint of the host key; when given, a matching key is "
                  "trusted without a separate approval.")
    install_password = models.TextField(
        blank=True, editable=False,
        help_text="Encrypted one-time password used once to install the portal's key; "
                  "erased after use.")
    management_nic = models.CharField(max_length=c.IFNAME_MAX, blank=True, editable=False,
                                      help_text="The NIC that carried the host's address.")
    last_refresh = models.DateTimeField(null=True, blank=True, editable=False)
    reported = models.JSONField(default=dict, blank=True, editable=False,
                                help_text="The last full report of the host's agent.")
    applied_state = models.JSONField(default=dict, blank=True, editable=False,
                                     help_text="The last desired state the host committed.")

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["cluster", "status"], name="host_cluster_status")]

    def __str__(self) -> str:
        return self.name


class PortalKeyPair(models.Model):
    """The portal's own SSH key pair, made once; the private half encrypted at rest.

    Operators install the public key on hosts (or give a one-time password once).
    """

    private_key = models.TextField(help_text="Encrypted OpenSSH private key.")
    public_key = models.TextField(help_text="OpenSSH public key line.")
    fingerprint = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "portal SSH key"

    def __str__(self) -> str:
        return self.fingerprint


class Bond(PortalModel):
    """A bond the portal wants on a host; its slaves are the NICs that point to it."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="bonds")
    name = models.CharField(max_length=c.IFNAME_MAX)
    mode = models.PositiveSmallIntegerField(choices=BondMode.choices,
                                            default=BondMode.ACTIVE_BACKUP)
    options = models.CharField(max_length=255, blank=True,
                               help_text="Bonding options, e.g. miimon=100.")
    labels = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="bond_unique_name_on_host"),
            models.CheckConstraint(condition=Q(mode__gte=0, mode__lte=6), name="bond_mode_range"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        raise_for(rules.check_bond(
            rules.BondData(name=self.name or "", mode=self.mode, options=self.options or ""),
            field_prefix=""))


class HostNic(PortalModel):
    """A physical interface of a host, as the host reports it; ``bond`` when it is a slave."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="nics")
    name = models.CharField(max_length=c.IFNAME_MAX)
    mac = models.CharField(max_length=17, blank=True, verbose_name="MAC")
    speed = models.PositiveIntegerField(null=True, blank=True, help_text="Mbps")
    mtu = models.PositiveIntegerField(default=c.MTU_DEFAULT, verbose_name="MTU")
    link_up = models.BooleanField(default=True)
    labels = models.JSONField(default=list, blank=True)
    bond = models.ForeignKey(Bond, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="slaves")

    class Meta:
        ordering = ["host__name", "name"]
        verbose_name = "host NIC"
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="hostnic_unique_name_on_host"),
        ]

    def __str__(self) -> str:
        return f"{self.host}/{self.name}"

    def clean(self) -> None:
        violations = []
        for label in self.labels or []:
            violations += rules.check_label(str(label), "labels")
        raise_for(violations)


class NetworkAttachment(PortalModel):
    """A logical network implemented on a host's NIC or bond, with its IP configuration.

    ``reported`` holds the last values the host reported for it; ``out_of_sync`` lists the
    properties that differ (property, wanted, reported), empty when in sync.
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="attachments")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="attachments")
    # RESTRICT: a NIC or bond in use cannot go alone, but deleting the host takes all.
    nic = models.ForeignKey(HostNic, null=True, blank=True, on_delete=models.RESTRICT,
                            related_name="attachments")
    bond = models.ForeignKey(Bond, null=True, blank=True, on_delete=models.RESTRICT,
                             related_name="attachments")
    ipv4_boot_protocol = models.CharField(max_length=8, choices=BootProtocol.choices,
                                          default=BootProtocol.NONE)
    ipv4_address = models.CharField(max_length=15, blank=True)
    ipv4_netmask = models.CharField(max_length=15, blank=True)
    ipv4_gateway = models.CharField(max_length=15, blank=True)
    ipv6_boot_protocol = models.CharField(max_length=8, choices=BootProtocol.choices,
                                          default=BootProtocol.NONE)
    ipv6_address = models.CharField(max_length=39, blank=True)
    ipv6_prefix = models.CharField(max_length=3, blank=True)
    ipv6_gateway = models.CharField(max_length=39, blank=True)
    via_label = models.BooleanField(default=False, editable=False)
    reported = models.JSONField(default=dict, blank=True, editable=False)
    in_sync = models.BooleanField(default=True, editable=False)
    out_of_sync = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["host__name", "network__name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "network"],
                                    name="attachment_unique_network_on_host"),
            models.CheckConstraint(
                condition=(Q(nic__isnull=False, bond__isnull=True)
                           | Q(nic__isnull=True, bond__isnull=False)),
                name="attachment_on_nic_xor_bond"),
        ]
        indexes = [
            models.Index(fields=["network", "in_sync"], name="attachment_net_sync"),
            # The host list's "Out of sync" count and the dashboard's: only the (few)
            # out-of-sync rows are in this index.
            models.Index(fields=["host"], condition=Q(in_sync=False),
                         name="attachment_host_unsynced"),
        ]

    def __str__(self) -> str:
        return f"{self.network} on {self.host}/{self.interface_name}"

    @property
    def interface_name(self) -> str:
        if self.bond_id:
            return self.bond.name
        return self.nic.name if self.nic_id else ""

    def as_rule_data(self) -> rules.AttachmentData:
        return rules.AttachmentData(
            network=self.network.name, interface=self.interface_name,
            ipv4=rules.IpConfig(self.ipv4_boot_protocol, self.ipv4_address, self.ipv4_netmask,
                                self.ipv4_gateway),
            ipv6=rules.IpConfig(self.ipv6_boot_protocol, self.ipv6_address, self.ipv6_prefix,
                                self.ipv6_gateway),
            via_label=self.via_label, out_of_sync=not self.in_sync,
        )


class VM(PortalModel):
    """A virtual machine of a cluster, running on a host (or down, without one)."""

    name = models.CharField(max_length=255, unique=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="vms")
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="vms")
    status = models.CharField(max_length=8, choices=VmStatus.choices, default=VmStatus.DOWN)

    class Meta:
        ordering = ["name"]
        verbose_name = "VM"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.cluster_id:
            from hosts.services import check_vm  # one rule, reached through the service

            raise_for(check_vm(self))


class Vnic(PortalModel):
    """A VM's virtual NIC, connected through a vNIC profile to a VM network."""

    vm = models.ForeignKey(VM, on_delete=models.CASCADE, related_name="vnics")
    name = models.CharField(max_length=50)
    profile = models.ForeignKey(VnicProfile, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="vnics")
    mac = models.CharField(max_length=17, blank=True, verbose_name="MAC",
                           help_text="Allocated from the cluster's MAC pool when empty.")
    type = models.CharField(max_length=8, choices=VnicType.choices, default=VnicType.VIRTIO)
    linked = models.BooleanField(default=True)

    class Meta:
        ordering = ["vm__name", "name"]
        verbose_name = "vNIC"
        constraints = [
            models.UniqueConstraint(fields=["vm", "name"], name="vnic_unique_name_in_vm"),
        ]

    def __str__(self) -> str:
        return f"{self.vm}/{self.name}"


class Job(models.Model):
    """One operation on one or more hosts; written before its task is queued.

    ``request`` keeps what was asked (never a secret); ``hosts`` holds one entry per host.
    """

    kind = models.CharField(max_length=20, choices=JobKind.choices)
    status = models.CharField(max_length=10, choices=JobStatus.choices,
                              default=JobStatus.PENDING)
    description = models.CharField(max_length=255, blank=True)
    request = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    queued = models.BooleanField(default=False,
                                 help_text="Its task reached the broker at least once.")
    lease_owner = models.CharField(max_length=64, blank=True,
                                   help_text="The runner working on it (worker/thread).")
    lease_until = models.DateTimeField(null=True, blank=True,
                                       help_text="The runner renews this while it works; a "
                                                 "lapsed lease means the runner was lost.")

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "-created"], name="job_status_created"),
            # The job list, the API and the dashboard read the newest jobs first; jobs
            # accumulate, so the first page must not sort the whole table.
            models.Index(fields=["-created"], name="job_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class JobHost(models.Model):
    """One host's part of a job: its status, timings, the plan that ran and the outcome.

    At most one entry per host is running or awaiting confirmation (a named partial unique
    constraint): two applies to one host run one after the other.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="hosts")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="job_entries")
    status = models.CharField(max_length=24, choices=JobHostStatus.choices,
                              default=JobHostStatus.PENDING)
    transaction = models.CharField(max_length=64, blank=True,
                                   help_text="The agent's transaction id of this apply.")
    plan = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "host__name"]
        constraints = [
            models.UniqueConstraint(fields=["job", "host"], name="jobhost_unique_host_in_job"),
            models.UniqueConstraint(
                fields=["host"], condition=Q(status__in=JOB_HOST_ACTIVE_STATUSES),
                name="jobhost_one_active_apply_per_host"),
        ]

    def __str__(self) -> str:
        return f"{self.job} on {self.host}"


class JobLog(models.Model):
    """A log line of a job, written as it happens (shown live on the job page)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="+")
    level = models.CharField(max_length=8, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "pk"]

    def __str__(self) -> str:
        return self.message[:80]
