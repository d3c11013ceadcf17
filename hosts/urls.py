"""Routes of the host, VM, vNIC and job pages (names: see portal/views.py)."""

from django.urls import path

from hosts import views
from portal.views import crud_urls

app_name = "hosts"

urlpatterns = [
    *crud_urls("hosts", views.HostListView, views.HostView, views.HostEditView,
               views.HostDeleteView),
    path("hosts/<int:pk>/setup-networks/", views.HostSetupNetworksView.as_view(),
         name="host_setup"),
    path("hosts/<int:pk>/setup-networks/preview/", views.HostSetupPreviewView.as_view(),
         name="host_setup_preview"),
    path("hosts/<int:pk>/sync/", views.HostSyncView.as_view(), name="host_sync"),
    path("hosts/<int:pk>/refresh/", views.HostRefreshView.as_view(), name="host_refresh"),
    path("hosts/<int:pk>/approve-key/", views.HostApproveKeyView.as_view(),
         name="host_approve_key"),
    path("hosts/<int:pk>/state.<str:fmt>", views.HostStateView.as_view(), name="host_state"),
    *crud_urls("vms", views.VMListView, views.VMView, views.VMEditView, views.VMDeleteView),
    path("vms/<int:vm_pk>/vnics/add/", views.VnicEditView.as_view(), name="vnic_add"),
    path("vnics/<int:pk>/edit/", views.VnicEditView.as_view(), name="vnic_edit"),
    path("vnics/<int:pk>/delete/", views.VnicDeleteView.as_view(), name="vnic_delete"),
    path("jobs/", views.JobListView.as_view(), name="job_list"),
    path("jobs/<int:pk>/", views.JobView.as_view(), name="job"),
    path("jobs/<int:pk>/progress/", views.JobProgressView.as_view(), name="job_progress"),
    path("jobs/<int:pk>/commands/", views.PreviewCommandsView.as_view(),
         name="preview_commands"),
]
