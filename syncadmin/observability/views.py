"""/metrics and /healthz: thin views over the observability services."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from syncadmin.lib.client_address import client_ip
from syncadmin.observability.health import health_change_log, health_check
from syncadmin.observability.metrics import metrics_render

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _ip_allowed(remote: str, allowed: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            log.warning("SYNC_METRICS_ALLOWED_IPS has an invalid entry: %r", entry)
    return False


def _bearer_token_matches(request, token: str) -> bool:
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_refusal(request) -> HttpResponse | None:
    """Why this scraper may not read /metrics (a 401/403 response), or None when it may."""
    token, allowed = settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS
    if not token and not allowed:
        return HttpResponse(
            "metrics are disabled: set SYNC_METRICS_TOKEN and/or SYNC_METRICS_ALLOWED_IPS\n",
            status=403,
            content_type="text/plain",
        )
    # The client address: X-Forwarded-For counts only from a trusted proxy (SYNC_TRUSTED_PROXIES),
    # otherwise it is whatever the client wants it to be.
    if allowed and not _ip_allowed(client_ip(request) or "", allowed):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    if token and not _bearer_token_matches(request, token):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


@never_cache
@require_GET
def metrics_view(request):
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE)


@never_cache
@require_GET
def healthz_view(request):
    """healthy/unhealthy for anyone (a load balancer); the checks' detail (hosts, ages, backlog)
    only for the metrics token or a logged-in console user."""
    scope = "web" if request.GET.get("scope") == "web" else "all"
    healthy, body = health_check(scope=scope)
    health_change_log(scope=scope, healthy=healthy, checks=body["checks"])
    token = settings.SYNC_METRICS_TOKEN
    if not (request.user.is_authenticated or (token and _bearer_token_matches(request, token))):
        body = {"status": body["status"]}
    return JsonResponse(body, status=200 if healthy else 503)
