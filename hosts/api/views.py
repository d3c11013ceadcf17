"""API viewsets of the hosts app: declarations over `PortalModelViewSet`.

NICs, bonds and attachments are read-only here: they change through one request per host,
``POST /api/hosts/{id}/setup-networks/``, which the rules check as a whole.
"""

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from hosts import filtersets, services
from hosts.api import serializers
from hosts.models import VM, Bond, Host, HostNic, Job, JobHost, NetworkAttachment, Vnic
from portal.api.exceptions import validation_response
from portal.api.permissions import ModelPermissions
from portal.api.views import PortalModelViewSet


class SetupNetworksPermission(ModelPermissions):
    """Setting up a host's networks changes the host: it needs ``change_host``."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class HostViewSet(PortalModelViewSet):
    queryset = Host.objects.select_related("cluster")
    serializer_class = serializers.HostSerializer
    filterset_class = filtersets.HostFilterSet

    def create_service(data, user):
        return services.create_host(Host(**data), user=user)

    @extend_schema(
        request=serializers.SetupNetworksSerializer,
        responses={
            200: OpenApiResponse(description="dry_run: the request is valid"),
            202: serializers.JobSerializer,
            400: OpenApiResponse(description="Every violated rule: field, code, message"),
        },
    )
    @action(detail=True, methods=["post"], url_path="setup-networks",
            permission_classes=[SetupNetworksPermission])
    def setup_networks(self, request, pk=None):
        """Validate a host's whole setup-networks request; store it and queue the job."""
        host = self.get_object()
        serializer = serializers.SetupNetworksSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        setup, options = services.setup_request_from_data(data)
        outcome = services.setup_networks(host, setup, options=options, user=request.user,
                                          dry_run=data["dry_run"])
        if not outcome.ok:
            return validation_response([v.as_dict() for v in outcome.violations],
                                       detail="The request breaks the rules below.")
        if data["dry_run"]:
            return Response({"detail": "The request is valid.", "dry_run": True})
        job = serializers.JobSerializer(outcome.job, context={"request": request})
        return Response(job.data, status=status.HTTP_202_ACCEPTED)


class HostNicViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = HostNic.objects.select_related("host", "bond")
    serializer_class = serializers.HostNicSerializer
    filterset_class = filtersets.HostNicFilterSet


class BondViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Bond.objects.select_related("host").prefetch_related("slaves")
    serializer_class = serializers.BondSerializer
    filterset_class = filtersets.BondFilterSet


class AttachmentViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = NetworkAttachment.objects.select_related("host", "network", "nic", "bond")
    serializer_class = serializers.AttachmentSerializer
    filterset_class = filtersets.NetworkAttachmentFilterSet


class VMViewSet(PortalModelViewSet):
    queryset = VM.objects.select_related("cluster", "host")
    serializer_class = serializers.VMSerializer
    filterset_class = filtersets.VMFilterSet


class VnicViewSet(PortalModelViewSet):
    queryset = Vnic.objects.select_related("vm", "profile")
    serializer_class = serializers.VnicSerializer
    filterset_class = filtersets.VnicFilterSet

    def create_service(data, user):
        return services.save_vnic(Vnic(**data))

    def update_service(vnic, data, user):
        for key, value in data.items():
            setattr(vnic, key, value)
        return services.save_vnic(vnic)


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Job.objects.select_related("created_by").prefetch_related(
        Prefetch("hosts", queryset=JobHost.objects.select_related("host")))
    serializer_class = serializers.JobSerializer
    filterset_class = filtersets.JobFilterSet
