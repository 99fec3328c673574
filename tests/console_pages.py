"""Every page the URLconf declares, as URLs a test can request: the security-header tests walk them all.

Enumerated from the URLconf, not listed by hand, so a page added later is covered (or, when it needs
an object this helper does not know how to supply, fails loudly here until it is taught).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.urls import URLPattern, URLResolver, get_resolver, reverse

from reconciliation import reports
from reconciliation import services as reconciliation_services
from reconciliation.models import AlertRule, Discrepancy, RunTrigger
from syncadmin.services import api_token_create
from tests.factories import (
    AlertNotificationFactory,
    BulkJobFactory,
    DeadLetterFactory,
    PurgeRunFactory,
    QueuePauseFactory,
    SavedViewFactory,
    TerminalFactory,
    UserFactory,
)
from tests.reconciliation.helpers import drain_all, env, ingest

# URLs outside the console: the SOAP endpoint (its own protocol), Django's admin (its own pages) and the
# automation API (JSON for scripts: tests/syncadmin/api/, schemathesis from its OpenAPI schema).
NOT_CONSOLE = ("terminal-soap",)
SKIPPED_PREFIXES = ("admin/", "api/")


@dataclass(frozen=True)
class Page:
    name: str  # the URL's name, with its namespace
    url: str


def url_patterns(resolver=None, prefix: str = "", namespace: str | None = None):
    """(route, namespaced name, converter names) of every URL pattern of the project, the admin's included."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry, prefix + str(entry.pattern), entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or ""
            yield prefix + str(entry.pattern), name, list(getattr(entry.pattern, "converters", {}))


def url_names() -> list[tuple[str, list[str]]]:
    """(namespaced name, converter names) of every URL pattern outside the admin."""
    return [(name, converters) for route, name, converters in url_patterns() if not route.startswith(SKIPPED_PREFIXES)]


def console_objects() -> dict[str, int]:
    """One object of each kind a console URL can point at (a real reconciliation gap included)."""
    terminal = TerminalFactory(code="PAGES-T1")
    dead = DeadLetterFactory(message__terminal=terminal)
    ingest(terminal, env("pages-a", "A"), env("pages-b", "B"))
    drain_all()
    reports.reported_counts_store(terminal=terminal, counts=[("product", 5, datetime.now(UTC) + timedelta(seconds=1))])
    run = reconciliation_services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
    PurgeRunFactory()
    return {
        "message": dead.message.pk,
        "bulk-job": BulkJobFactory().pk,
        "terminal": terminal.pk,
        "reconciliation:explain": Discrepancy.objects.filter(run=run).first().pk,
        "reconciliation:run_detail": run.pk,
        "terminal_code": terminal.code,
        "pause": QueuePauseFactory().pk,
        "alerts:rule_edit": AlertRule.objects.order_by("pk").first().pk,
        "alerts:notification_resend": AlertNotificationFactory().pk,
        "api-token": api_token_create(user=UserFactory(username="pages-token-owner"), name="pages")[0].pk,
        "saved-view": SavedViewFactory(name="pages", shared=True).pk,  # a team view: every user may open it
    }


# Pages that need a query string to show anything but a 400.
QUERIES = {
    "reconciliation:cell": "?terminal={terminal_code}&entity_type=product",
    "deadletter-group": "?by=terminal&key={terminal_code}",
    "entity-story": "?entity_type=product&entity_key=A",
}


def console_pages(objects: dict[str, int]) -> list[Page]:
    """Every console URL, filled in with ``objects`` (from ``console_objects``)."""
    pages = []
    for name, converters in url_names():
        if name in NOT_CONSOLE:
            continue
        kwargs = {}
        if converters:
            assert converters == ["pk"], f"{name}: teach tests/console_pages.py its arguments {converters}"
            key = name if name in objects else next((k for k in objects if name.startswith(k + "-")), None)
            assert key is not None, f"{name}: teach tests/console_pages.py which object its pk names"
            kwargs["pk"] = objects[key]
        query = QUERIES.get(name, "").format(**objects)
        pages.append(Page(name, reverse(name, kwargs=kwargs) + query))
    return pages
