from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from syncadmin import views
from syncadmin.api.main import api, api_not_found
from syncadmin.observability.views import healthz_view, metrics_view
from terminals.soap import terminal_soap_view

urlpatterns = [
    path("admin/", admin.site.urls),
    # The automation API (bearer tokens or the console session; OpenAPI at /api/v1/openapi.json).
    path("api/v1/", api.urls),
    re_path(r"^api/", api_not_found, name="api-not-found"),
    # The terminal SOAP API (CSRF-exempt by design; WSDL at ?wsdl). The trailing slash is
    # optional because SOAP clients POST and cannot follow APPEND_SLASH's redirect.
    re_path(r"^soap/terminal/v1/?$", terminal_soap_view, name="terminal-soap"),
    # Console (login required on every page; see syncadmin.lib.console.console_view).
    path("", views.dashboard, name="dashboard"),
    path("audit/", views.audit_list, name="audit-list"),
    path("account/api-tokens/", views.api_tokens, name="api-tokens"),
    path("account/api-tokens/<int:pk>/revoke/", views.api_token_revoke_view, name="api-token-revoke"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reconciliation/", include("reconciliation.urls")),
    path("alerts/", include("reconciliation.alert_urls")),
    path("", include("messages.urls")),
    path("", include("terminals.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz_view, name="healthz"),
]
