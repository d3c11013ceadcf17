"""API viewsets of the networks app: declarations over `PortalModelViewSet`."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from networks import filtersets, services
from networks.api import serializers
from networks.models import (
    ROLE_FLAGS,
    Cluster,
    ClusterNetwork,
    DataCenter,
    Network,
    VnicProfile,
)
from portal.api.permissions import HostSetupPermission
from portal.api.views import PortalModelViewSet, with_values


class DataCenterViewSet(PortalModelViewSet):
    queryset = DataCenter.objects.all()
    serializer_class = serializers.DataCenterSerializer
    filterset_class = filtersets.DataCenterFilterSet

    def create_service(data, user):
        return services.create_datacenter(DataCenter(**data))


class ClusterViewSet(PortalModelViewSet):
    queryset = Cluster.objects.select_related("datacenter")
    serializer_class = serializers.ClusterSerializer
    filterset_class = filtersets.ClusterFilterSet

    def create_service(data, user):
        return services.create_cluster(Cluster(**data))

    def update_service(cluster, data, user):
        return services.update_cluster(with_values(cluster, data))

    @extend_schema(request=None, responses={202: OpenApiResponse(
        description="The sync job (see /api/jobs/)")})
    @action(detail=True, methods=["post"], permission_classes=[HostSetupPermission])
    def sync(self, request, pk=None):
        """Push the portal's view to every host of the cluster ("sync cluster")."""
        from hosts import services as host_services
        from hosts.api.serializers import JobSerializer

        cluster = self.get_object()
        job = host_services.sync_hosts(cluster.hosts.all(), user=request.user,
                                       description=f"Sync cluster {cluster.name}")
        if job is None:
            return Response({"detail": "The cluster has no hosts.", "code": "no_hosts",
                             "errors": []}, status=status.HTTP_200_OK)
        data = JobSerializer(job, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class NetworkViewSet(PortalModelViewSet):
    queryset = Network.objects.select_related("datacenter")
    serializer_class = serializers.NetworkSerializer
    filterset_class = filtersets.NetworkFilterSet

    def create_service(data, user):
        return services.create_network(Network(**data))

    def update_service(network, data, user):
        return services.update_network(with_values(network, data), user=user)

    def delete_service(network, user):
        services.delete_network(network)


class ClusterNetworkViewSet(PortalModelViewSet):
    queryset = ClusterNetwork.objects.select_related("cluster", "network")
    serializer_class = serializers.ClusterNetworkSerializer
    filterset_class = filtersets.ClusterNetworkFilterSet

    def create_service(data, user):
        roles = {role for role, flag in ROLE_FLAGS.items() if data.get(flag)}
        return services.attach_network(data["cluster"], data["network"],
                                       required=data.get("required", True), roles=roles)

    def update_service(row, data, user):
        roles = None
        if any(flag in data for _, flag in ROLE_FLAGS.items()):
            roles = {role for role, flag in ROLE_FLAGS.items()
                     if data.get(flag, getattr(row, flag))}
        return services.update_cluster_network(row, required=data.get("required"),
                                               roles=roles, cluster=data.get("cluster"),
                                               network=data.get("network"))

    def delete_service(row, user):
        services.detach_network(row)


class VnicProfileViewSet(PortalModelViewSet):
    queryset = VnicProfile.objects.select_related("network")
    serializer_class = serializers.VnicProfileSerializer
    filterset_class = filtersets.VnicProfileFilterSet
