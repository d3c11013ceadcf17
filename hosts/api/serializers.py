from rest_framework import serializers

from hosts.models import VM, Bond, Host, HostNic, Job, JobHost, JobLog, NetworkAttachment, Vnic
from networks import constants as c
from networks.choices import BondMode, BootProtocol
from portal.api.serializers import PkIdentityField, PortalModelSerializer


class HostSerializer(PortalModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=256,
        style={"input_type": "password"},
        help_text="One-time password used once to install the portal's key; never returned.")

    class Meta:
        model = Host
        fields = ["id", "url", "name", "address", "ssh_port", "ssh_user", "password", "cluster",
                  "status", "status_reason", "host_key_type", "host_key_fingerprint",
                  "host_key_state", "expected_fingerprint", "management_nic", "last_refresh",
                  "created", "updated"]
        read_only_fields = ["status", "status_reason", "host_key_type", "host_key_fingerprint",
                            "host_key_state", "management_nic", "last_refresh"]
        extra_kwargs = {"url": {"view_name": "api:host-detail"}}


class HostNicSerializer(PortalModelSerializer):
    bond_name = serializers.CharField(source="bond.name", read_only=True, default=None)

    class Meta:
        model = HostNic
        fields = ["id", "url", "host", "name", "mac", "speed", "mtu", "link_up", "labels",
                  "bond", "bond_name", "created", "updated"]
        read_only_fields = fields
        extra_kwargs = {"url": {"view_name": "api:hostnic-detail"}}


class BondSerializer(PortalModelSerializer):
    slaves = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Bond
        fields = ["id", "url", "host", "name", "mode", "options", "labels", "slaves",
                  "created", "updated"]
        read_only_fields = fields
        extra_kwargs = {"url": {"view_name": "api:bond-detail"}}


class AttachmentSerializer(PortalModelSerializer):
    network_name = serializers.CharField(source="network.name", read_only=True)
    interface = serializers.CharField(source="interface_name", read_only=True)

    class Meta:
        model = NetworkAttachment
        fields = ["id", "url", "host", "network", "network_name", "interface", "nic", "bond",
                  "ipv4_boot_protocol", "ipv4_address", "ipv4_netmask", "ipv4_gateway",
                  "ipv6_boot_protocol", "ipv6_address", "ipv6_prefix", "ipv6_gateway",
                  "via_label", "in_sync", "out_of_sync", "reported", "created", "updated"]
        read_only_fields = fields
        extra_kwargs = {"url": {"view_name": "api:networkattachment-detail"}}


class VMSerializer(PortalModelSerializer):
    class Meta:
        model = VM
        fields = ["id", "url", "name", "cluster", "host", "status", "created", "updated"]
        extra_kwargs = {"url": {"view_name": "api:vm-detail"}}


class VnicSerializer(PortalModelSerializer):
    class Meta:
        model = Vnic
        fields = ["id", "url", "vm", "name", "profile", "mac", "type", "linked", "created",
                  "updated"]
        extra_kwargs = {"url": {"view_name": "api:vnic-detail"}}

    def clean_exclude(self):
        return ["mac"]  # allocated and checked against the pool by the service


class JobLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobLog
        fields = ["created", "host", "level", "message"]


class JobHostSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)

    class Meta:
        model = JobHost
        fields = ["host", "host_name", "status", "transaction", "plan", "result", "error",
                  "started", "finished"]


class JobSerializer(serializers.ModelSerializer):
    serializer_url_field = PkIdentityField
    hosts = JobHostSerializer(many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True,
                                       default=None)

    class Meta:
        model = Job
        fields = ["id", "url", "kind", "status", "description", "request", "created_by",
                  "created", "started", "finished", "hosts"]
        read_only_fields = fields
        extra_kwargs = {"url": {"view_name": "api:job-detail"}}


# --- Setup host networks ----------------------------------------------------------------


class IpConfigSerializer(serializers.Serializer):
    boot_protocol = serializers.ChoiceField(choices=BootProtocol.choices,
                                            default=BootProtocol.NONE)
    address = serializers.CharField(required=False, allow_blank=True, default="",
                                    max_length=39)
    netmask = serializers.CharField(required=False, allow_blank=True, default="",
                                    max_length=39, help_text="IPv4: dotted or prefix length; "
                                                             "IPv6: prefix length")
    gateway = serializers.CharField(required=False, allow_blank=True, default="",
                                    max_length=39)


class SetupBondSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=c.IFNAME_MAX)
    mode = serializers.ChoiceField(choices=BondMode.choices, default=BondMode.ACTIVE_BACKUP)
    options = serializers.CharField(required=False, allow_blank=True, default="",
                                    max_length=255)
    slaves = serializers.ListField(child=serializers.CharField(max_length=c.IFNAME_MAX),
                                   max_length=64)


class SetupAttachmentSerializer(serializers.Serializer):
    network = serializers.CharField(max_length=c.NETWORK_NAME_MAX,
                                    help_text="Network name (unique in the data center).")
    interface = serializers.CharField(max_length=c.IFNAME_MAX,
                                      help_text="NIC or bond name.")
    ipv4 = IpConfigSerializer(required=False)
    ipv6 = IpConfigSerializer(required=False)


class SetupNetworksSerializer(serializers.Serializer):
    """A whole setup-networks request for one host (checked together by the rules)."""

    bonds = SetupBondSerializer(many=True, required=False, default=list)
    removed_bonds = serializers.ListField(child=serializers.CharField(max_length=c.IFNAME_MAX),
                                          required=False, default=list)
    attachments = SetupAttachmentSerializer(many=True, required=False, default=list)
    removed_attachments = serializers.ListField(
        child=serializers.CharField(max_length=c.NETWORK_NAME_MAX), required=False,
        default=list, help_text="Names of networks to detach.")
    labels = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(max_length=c.LABEL_MAX)),
        required=False, default=dict,
        help_text="Interface name -> its complete new list of labels.")
    synced_networks = serializers.ListField(
        child=serializers.CharField(max_length=c.NETWORK_NAME_MAX), required=False,
        default=list, help_text="Out-of-sync networks to push as the portal has them.")
    check_connectivity = serializers.BooleanField(default=True)
    connectivity_timeout = serializers.IntegerField(
        required=False, min_value=c.CONNECTIVITY_TIMEOUT_MIN,
        max_value=c.CONNECTIVITY_TIMEOUT_MAX)
    commit_on_success = serializers.BooleanField(default=True)
    dry_run = serializers.BooleanField(default=False)


class ApproveKeySerializer(serializers.Serializer):
    fingerprint = serializers.CharField(max_length=100,
                                        help_text="SHA256:... of the key to trust")


class PortalKeySerializer(serializers.Serializer):
    public_key = serializers.CharField()
    fingerprint = serializers.CharField()
