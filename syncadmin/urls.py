from django.contrib import admin
from django.urls import path

from syncadmin.observability.views import healthz_view, metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz_view, name="healthz"),
]
