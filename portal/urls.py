from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Network portal administration"
admin.site.site_title = "Network portal"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("portal.api.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
