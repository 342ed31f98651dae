from django.contrib import admin
from django.urls import include, path

from shopswift_ops import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/v1/openapi.json", views.openapi_json, name="api-openapi"),
    path("admin/", admin.site.urls),
    path("", include("metrics.urls")),
    path("", include("rollout.urls")),
    path("", include("incidents.urls")),
    path("", include("incidents.support.urls")),
]

handler404 = views.not_found
handler500 = views.server_error
