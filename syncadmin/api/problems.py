"""RFC 9457 problem details: every error the API answers, with the field at fault when there is one."""

from __future__ import annotations

import json

from django.http import HttpResponse
from ninja import Schema

PROBLEM_MEDIA_TYPE = "application/problem+json"
# The "type" of each problem: a stable URI naming the kind (documented in docs/api.md, "Errors").
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Idempotency key reused",
    429: "Too many requests",
    500: "Internal error",
}


class FieldError(Schema):
    field: str  # a dotted path into the request: "body.reason", "query.state", "body.terminals.3.code"
    message: str


class Problem(Schema):
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []


class ProblemError(Exception):
    """Raised by an endpoint to answer a problem; ``errors``: [(field, message)]."""

    def __init__(self, status: int, detail: str, *, errors: list[tuple[str, str]] | None = None, kind: str = ""):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.kind = status, detail, errors or [], kind


def problem_type(status: int, kind: str = "") -> str:
    return f"/api/v1/problems/{kind or status}"


def problem_response(
    status: int, detail: str, *, errors: list[tuple[str, str]] | None = None, kind: str = ""
) -> HttpResponse:
    body = {
        "type": problem_type(status, kind),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "errors": [{"field": f, "message": m} for f, m in errors or []],
    }
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_MEDIA_TYPE)


def field_errors(form_errors, location: str) -> list[tuple[str, str]]:
    """A Django form's (or filterset's) errors as (field, message) pairs under ``location``."""
    return [
        (f"{location}.{name}" if name != "__all__" else location, " ".join(msgs)) for name, msgs in form_errors.items()
    ]


# Every operation documents these answers besides its own (a 401 and a 429 can answer any call).
COMMON = {400: Problem, 401: Problem, 403: Problem, 429: Problem}
