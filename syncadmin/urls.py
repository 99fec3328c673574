from django.contrib import admin
from django.urls import include, path, re_path

from terminals.soap import terminal_soap_view

urlpatterns = [
    path("admin/", admin.site.urls),
    # The terminal SOAP API (CSRF-exempt by design; WSDL at ?wsdl). The trailing slash is
    # optional because SOAP clients POST and cannot follow APPEND_SLASH's redirect.
    re_path(r"^soap/terminal/v1/?$", terminal_soap_view, name="terminal-soap"),
    path("reconciliation/", include("reconciliation.urls")),
]
