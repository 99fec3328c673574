"""The NinjaAPI: its routers, errors as problem+json (never a 500 for a caller's input), its OpenAPI document."""

from __future__ import annotations

import functools

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.urls import URLPattern
from django.views.decorators.http import require_safe
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from syncadmin.api import bulk_jobs, dead_letters, health, messages, pauses, reconciliation, terminals
from syncadmin.api.auth import AUTH, TokenRateThrottle
from syncadmin.api.idempotency import HEADER, KEY_MAX
from syncadmin.api.problems import PROBLEM_MEDIA_TYPE, TITLES, ProblemError, problem_response
from syncadmin.api.rendering import ExactJSONRenderer

DESCRIPTION = """Operate SyncAdmin from scripts: terminals, messages, dead letters, bulk jobs,
reconciliation and health. Authenticate with `Authorization: Bearer <token>` (a token from the
console's user menu, "API tokens", or `manage.py api_token create`). Errors are RFC 9457
`application/problem+json`. State-changing POSTs accept an `Idempotency-Key` header.
The guide: docs/api.md."""


IDEMPOTENCY_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "retrying with the same key returns the first answer and changes nothing twice",
    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX, "pattern": "^[\\x20-\\x7e]+$"},
}


def _problem_when_not_allowed(view):
    """ninja answers a method a path does not have with a plain-text 405: make it a problem, Allow kept."""

    @functools.wraps(view)  # keeps csrf_exempt and the other marks ninja set on its view
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = problem_response(405, f"{request.method} is not allowed here; allowed: {allowed}")
            response["Allow"] = allowed
        return response

    return wrapped


class SyncAdminAPI(NinjaAPI):
    def _get_urls(self):
        urls = super()._get_urls()
        for pattern in urls:
            if isinstance(pattern, URLPattern):
                pattern.callback = _problem_when_not_allowed(pattern.callback)
        return urls

    def get_openapi_schema(self, *args, **kwargs):
        """Error answers are documented as application/problem+json, which is what they are, under the
        problems' own titles (ninja takes Python's HTTP phrases, which change between versions: 422 is
        "Unprocessable Entity" on 3.11 and "Unprocessable Content" on 3.13, and the committed schema must
        not); every POST (each is wrapped by ``idempotent``) documents its Idempotency-Key header."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for path in schema["paths"].values():
            for method, operation in path.items():
                if method == "post":
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400:
                        response["description"] = TITLES[int(status)]
                        if "application/json" in content:
                            content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        return schema


api = SyncAdminAPI(
    title="SyncAdmin automation API",
    version="1",
    description=DESCRIPTION,
    auth=AUTH,
    renderer=ExactJSONRenderer(),
    throttle=[TokenRateThrottle()],
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    # ninja serves both documents to any method; they are read-only pages (a 405 problem otherwise).
    docs_decorator=require_safe,
)

api.add_router("/terminals", terminals.router)
api.add_router("/messages", messages.router)
api.add_router("/dead-letters", dead_letters.router)
api.add_router("/bulk-jobs", bulk_jobs.router)
api.add_router("/pauses", pauses.router)
api.add_router("/reconciliation", reconciliation.router)
api.add_router("/health", health.router)


def _location(loc) -> str:
    parts = [str(p) for p in loc]
    # ninja names a body parameter after the function argument ("body"); the caller knows only "body".
    if len(parts) >= 2 and parts[0] == "body":
        parts = ["body", *parts[2:]]
    return ".".join(parts)


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    errors = [(_location(e.get("loc", ())), e.get("msg", "not valid")) for e in exc.errors]
    return problem_response(400, "the request is not valid: see errors", errors=errors)


@api.exception_handler(ProblemError)
def problem_error(request, exc: ProblemError):
    return problem_response(exc.status, exc.detail, errors=exc.errors, kind=exc.kind)


@api.exception_handler(AuthenticationError)
def authentication_error(request, exc):
    response = problem_response(401, "send Authorization: Bearer <API token> (or log in to the console)")
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(Throttled)
def throttled(request, exc: Throttled):
    return problem_response(429, "too many calls with this token; wait and try again")


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    return problem_response(exc.status_code, str(exc))


@api.exception_handler(Http404)
def not_found(request, exc):
    return problem_response(404, str(exc) or "no such object")


@api.exception_handler(PermissionDenied)
def permission_denied(request, exc):
    return problem_response(403, str(exc) or "forbidden")


def api_not_found(request, *args, **kwargs):
    """Any other URL under /api/v1/: a problem, not the console's HTML 404 page."""
    return problem_response(404, f"no API endpoint at {request.path}")
