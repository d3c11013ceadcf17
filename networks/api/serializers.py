from rest_framework import serializers

from networks.models import Cluster, ClusterNetwork, DataCenter, Network, VnicProfile
from portal.api.serializers import PortalModelSerializer


class DataCenterSerializer(PortalModelSerializer):
    class Meta:
        model = DataCenter
        fields = ["id", "url", "name", "description", "is_demo", "created", "updated"]
        read_only_fields = ["is_demo"]
        extra_kwargs = {"url": {"view_name": "api:datacenter-detail"}}


class ClusterSerializer(PortalModelSerializer):
    class Meta:
        model = Cluster
        fields = ["id", "url", "datacenter", "name", "description", "mac_pool_start",
                  "mac_pool_end", "created", "updated"]
        extra_kwargs = {"url": {"view_name": "api:cluster-detail"}}


class NetworkSerializer(PortalModelSerializer):
    effective_mtu = serializers.IntegerField(read_only=True)

    class Meta:
        model = Network
        fields = ["id", "url", "datacenter", "uuid", "name", "description", "vlan", "mtu",
                  "effective_mtu", "vm_network", "stp", "label", "dns_servers",
                  "qos_outbound_average", "on_host_name", "created", "updated"]
        read_only_fields = ["uuid", "on_host_name"]
        extra_kwargs = {"url": {"view_name": "api:network-detail"}}

    def validate_dns_servers(self, value):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise serializers.ValidationError("A list of IP addresses is expected.",
                                              code="dns_servers_not_a_list")
        return value


class ClusterNetworkSerializer(PortalModelSerializer):
    roles = serializers.SerializerMethodField()
    network_name = serializers.CharField(source="network.name", read_only=True)

    class Meta:
        model = ClusterNetwork
        fields = ["id", "url", "cluster", "network", "network_name", "required",
                  "is_management", "is_display", "is_migration", "is_default_route", "roles",
                  "created", "updated"]
        extra_kwargs = {"url": {"view_name": "api:clusternetwork-detail"}}

    def get_roles(self, obj) -> list[str]:
        return sorted(obj.roles)

    def validate(self, attrs):
        # Roles, the required flag and the row's cluster and network are checked by the
        # services (attach_network, update_cluster_network) across the cluster: a role given
        # here moves from its holder, which a check of this row alone would refuse.
        return attrs


class VnicProfileSerializer(PortalModelSerializer):
    class Meta:
        model = VnicProfile
        fields = ["id", "url", "network", "name", "description", "created", "updated"]
        extra_kwargs = {"url": {"view_name": "api:vnicprofile-detail"}}
