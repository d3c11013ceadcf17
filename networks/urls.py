"""Routes of the data center, cluster and network pages (names: see portal/views.py)."""

from django.urls import path

from networks import views
from portal.views import crud_urls

app_name = "networks"

urlpatterns = [
    *crud_urls("datacenters", views.DataCenterListView, views.DataCenterView,
               views.DataCenterEditView, views.DataCenterDeleteView),
    *crud_urls("clusters", views.ClusterListView, views.ClusterView, views.ClusterEditView,
               views.ClusterDeleteView),
    path("clusters/<int:pk>/networks/", views.ManageClusterNetworksView.as_view(),
         name="cluster_networks"),
    *crud_urls("networks", views.NetworkListView, views.NetworkView, views.NetworkEditView,
               views.NetworkDeleteView),
]
