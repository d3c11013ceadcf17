from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from hosts.api import views as host_views
from networks.api import views as network_views
from portal.api.audit import AuditEntryViewSet

router = DefaultRouter()
router.register("datacenters", network_views.DataCenterViewSet)
router.register("clusters", network_views.ClusterViewSet)
router.register("networks", network_views.NetworkViewSet)
router.register("cluster-networks", network_views.ClusterNetworkViewSet)
router.register("vnic-profiles", network_views.VnicProfileViewSet)
router.register("hosts", host_views.HostViewSet)
router.register("host-nics", host_views.HostNicViewSet)
router.register("bonds", host_views.BondViewSet)
router.register("attachments", host_views.AttachmentViewSet)
router.register("vms", host_views.VMViewSet)
router.register("vnics", host_views.VnicViewSet)
router.register("jobs", host_views.JobViewSet)
router.register("audit", AuditEntryViewSet)

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
