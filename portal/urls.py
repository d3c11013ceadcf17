from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal.auth import ThrottledAuthenticationForm
from portal.views import DashboardView

admin.site.site_header = "Network portal administration"
admin.site.site_title = "Network portal"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("portal.api.urls")),
    path("login/", auth_views.LoginView.as_view(
        redirect_authenticated_user=True, authentication_form=ThrottledAuthenticationForm),
        name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", DashboardView.as_view(), name="dashboard"),
    path("", include("networks.urls")),
    path("", include("hosts.urls")),
]
