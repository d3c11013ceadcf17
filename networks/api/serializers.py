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

    def validate_datacenter(self, value):
        if self.instance is not None and value != self.instance.datacenter:
            raise serializers.ValidationError("A cluster cannot move to another data center.",
                                              code="cluster_datacenter_immutable")
        return value


class NetworkSerializer(PortalModelSerializer):
    effective_mtu = serializers.IntegerField(read_only=True)

    class Meta:
        model = Network
        fields = ["id", "url", "datacenter", "uuid", "name", "description", "vlan", "mtu",
                  "effective_mtu", "vm_network", "stp", "label", "dns_servers",
                  "qos_outbound_average", "on_host_name", "created", "updated"]
        read_only_fields = ["uuid", "on_host_name"]
        extra_kwargs = {"url": {"view_name": "api:network-detail"}}

    def validate_datacenter(self, value):
        if self.instance is not None and value != self.instance.datacenter:
            raise serializers.ValidationError("A network cannot move to another data center.",
                                              code="network_datacenter_immutable")
        return value

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
        # Roles and the required flag are checked across the cluster by the service.
        if self.instance is not None:
            for key in ("cluster", "network"):
                if key in attrs and attrs[key] != getattr(self.instance, key):
                    raise serializers.ValidationError(
                        {key: serializers.ErrorDetail(
                            f"The {key} of a cluster network cannot change; detach and "
                            "attach instead.", code="cluster_network_immutable")})
        return attrs


class VnicProfileSerializer(PortalModelSerializer):
    class Meta:
        model = VnicProfile
        fields = ["id", "url", "network", "name", "description", "created", "updated"]
        extra_kwargs = {"url": {"view_name": "api:vnicprofile-detail"}}
