"""API viewsets of the hosts app: declarations over `PortalModelViewSet`.

NICs, bonds and attachments are read-only here: they change through one request per host,
``POST /api/hosts/{id}/setup-networks/``, which the rules check as a whole.
"""

from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from hosts import filtersets, services, ssh, state
from hosts.api import serializers
from hosts.models import VM, Bond, Host, HostNic, Job, JobHost, NetworkAttachment, Vnic
from portal.api.exceptions import validation_response
from portal.api.permissions import ChangePermission, HostSetupPermission
from portal.api.views import PortalModelViewSet, with_values


class HostViewSet(PortalModelViewSet):
    queryset = Host.objects.select_related("cluster")
    serializer_class = serializers.HostSerializer
    filterset_class = filtersets.HostFilterSet

    def create_service(data, user):
        password = data.pop("password", "")
        return services.create_host(Host(**data), user=user, password=password)

    def _job_response(self, job, code=status.HTTP_202_ACCEPTED):
        data = serializers.JobSerializer(job, context={"request": self.request}).data
        return Response(data, status=code)

    @extend_schema(request=serializers.ApproveKeySerializer,
                   responses={202: serializers.JobSerializer})
    @action(detail=True, methods=["post"], url_path="approve-key",
            permission_classes=[ChangePermission])
    def approve_key(self, request, pk=None):
        """Approve the host key with this SHA-256 fingerprint and install the host."""
        host = self.get_object()
        serializer = serializers.ApproveKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.approve_host_key(host, serializer.validated_data["fingerprint"],
                                        user=request.user)
        return self._job_response(job)

    @extend_schema(request=None, responses={202: serializers.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermission])
    def sync(self, request, pk=None):
        """Push the portal's view of every network to the host ("sync all")."""
        host = self.get_object()
        return self._job_response(services.sync_hosts([host], user=request.user,
                                                      description=f"Sync {host.name}"))

    @extend_schema(request=None, responses={202: serializers.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermission])
    def refresh(self, request, pk=None):
        """Read the host's state now (NICs, sync state, status)."""
        host = self.get_object()
        return self._job_response(services.refresh_hosts([host], user=request.user))

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "nmstate"],
                                     description="json (default) or nmstate (YAML)")],
        responses={200: OpenApiResponse(description="The desired-state document")})
    @action(detail=True, methods=["get"], url_path="desired-state")
    def desired_state(self, request, pk=None):
        """The desired state the portal pushes to this host, as JSON or nmstate YAML."""
        host = self.get_object()
        document = state.compile_state(host)
        if request.query_params.get("format") == "nmstate":
            response = HttpResponse(state.nmstate_yaml(document),
                                    content_type="application/yaml")
            response["Content-Disposition"] = f'attachment; filename="{host.name}.yml"'
            return response
        return Response(document)

    @extend_schema(responses={200: serializers.PortalKeySerializer})
    @action(detail=False, methods=["get"], url_path="portal-key")
    def portal_key(self, request):
        """The portal's SSH public key, to install in each host's authorized_keys."""
        _key, pair = ssh.portal_key()
        return Response({"public_key": pair.public_key, "fingerprint": pair.fingerprint})

    @extend_schema(
        request=serializers.SetupNetworksSerializer,
        responses={
            200: OpenApiResponse(description="dry_run: the request is valid"),
            202: serializers.JobSerializer,
            400: OpenApiResponse(description="Every violated rule: field, code, message"),
        },
    )
    @action(detail=True, methods=["post"], url_path="setup-networks",
            permission_classes=[ChangePermission])
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


# Lists join only what their serializer reads beyond a pk (a row's host is its pk), and
# only the columns it reads: a host row is wide (its last report and applied state, as
# JSON) and was decoded for every NIC, attachment, VM and job entry of a page.


class HostNicViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = HostNic.objects.select_related("bond")
    serializer_class = serializers.HostNicSerializer
    filterset_class = filtersets.HostNicFilterSet


class BondViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Bond.objects.select_related("host").prefetch_related("slaves")
    serializer_class = serializers.BondSerializer
    filterset_class = filtersets.BondFilterSet


class AttachmentViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = NetworkAttachment.objects.select_related("network", "nic", "bond")
    serializer_class = serializers.AttachmentSerializer
    filterset_class = filtersets.NetworkAttachmentFilterSet

    @extend_schema(request=None, responses={202: serializers.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[HostSetupPermission])
    def sync(self, request, pk=None):
        """Push the portal's view of this attachment (the host's whole desired state)."""
        attachment = self.get_object()
        job = services.sync_hosts([attachment.host], user=request.user,
                                  description=f"Sync {attachment.network.name} on "
                                              f"{attachment.host.name}")
        data = serializers.JobSerializer(job, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class VMViewSet(PortalModelViewSet):
    queryset = VM.objects.all()
    serializer_class = serializers.VMSerializer
    filterset_class = filtersets.VMFilterSet

    def create_service(data, user):
        return services.save_vm(VM(**data))

    def update_service(vm, data, user):
        return services.save_vm(with_values(vm, data))


class VnicViewSet(PortalModelViewSet):
    queryset = Vnic.objects.all()
    serializer_class = serializers.VnicSerializer
    filterset_class = filtersets.VnicFilterSet

    def create_service(data, user):
        return services.save_vnic(Vnic(**data))

    def update_service(vnic, data, user):
        return services.save_vnic(with_values(vnic, data))


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Job.objects.select_related("created_by").only(
        "kind", "status", "description", "request", "created", "started", "finished",
        "created_by__username",
    ).prefetch_related(
        Prefetch("hosts", queryset=JobHost.objects.select_related("host").only(
            "job", "host__name", "status", "transaction", "plan", "result", "error",
            "started", "finished").order_by("host__name")))
    serializer_class = serializers.JobSerializer
    filterset_class = filtersets.JobFilterSet
