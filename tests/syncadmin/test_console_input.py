"""No console page or action answers 5xx to a user's input (issue 15), on SQLite and on PostgreSQL.

The pages come from the URLconf, not from a list here: every pattern is tested unless it is in
NOT_CONSOLE (with the reason), so a new page is covered the day it is added. The parameters of a
page are the query/form keys it reads, recorded while it answers a plain request (plus every
filter and form field name of the project, and an unknown one). For every page and method:

1. a fixed sweep: each parameter with each value of HOSTILE (the issue's cases among them: "²",
   "①", NUL, 10**30...), alone on a GET, over an otherwise valid form on a POST; on a keyset
   page each of HOSTILE_CURSORS (NUL, Infinity, malformed base64...) under each of its sorts;
   the bulk form's ``query`` (a message-list query string) with each message-list parameter
   set to each hostile value;
2. hypothesis: random mixes of valid values (choices, sorts, real cursors, existing ids) and
   hostile ones (arbitrary unicode, bytes that are not UTF-8, huge and negative numbers,
   floats, base64 of arbitrary JSON, malformed base64), derandomized so CI runs the same
   examples every time.

GETs run as a superuser (every page, every branch); POSTs as a superuser or a Viewer (403 is
fine). A streamed answer is read to its end. Each request runs in a savepoint that is rolled
back, so every example starts from the same database and one failure cannot poison the next.
"""

from __future__ import annotations

import base64
import json
import os
import re
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlencode

import django_filters
import pytest
from django import forms
from django.db import transaction
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages.models import MessageState
from reconciliation import reports
from reconciliation import services as recon
from reconciliation.models import AlertRule, Discrepancy, RunTrigger
from syncadmin.services import api_token_create, audit_record
from tests.console_pages import url_patterns
from tests.factories import (
    AlertNotificationFactory,
    BulkJobFactory,
    DeadLetterFactory,
    MessageFactory,
    MetricSampleFactory,
    PurgeRunFactory,
    QueuePauseFactory,
    SavedViewFactory,
    TerminalFactory,
    UserFactory,
)
from tests.reconciliation.helpers import drain_all, env, ingest

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("CONSOLE_FUZZ_EXAMPLES", "20"))  # per page and method; raise it for a deep run

# URL names (or route prefixes) that are not the console, and why they are not fuzzed here.
NOT_CONSOLE = {
    "admin/": "Django's own admin (superusers only)",
    "terminal-soap": "the terminals' SOAP API: tests/terminals/ and tests/chaos/test_hostile_input.py",
    "metrics": "Prometheus scrape endpoint, reads no parameter",
    "healthz": "load-balancer probe, tested in tests/syncadmin/observability/test_health.py",
    "login": "django's login view behind django-axes, tested in tests/messages/test_views.py",
    "logout": "django's logout view",
    "api/": "the automation API: schemathesis fuzzes it from its OpenAPI schema (tests/syncadmin/api/)",
}
# Which object a path's <int:pk> names, by the route before it.
PK_OWNER = {
    "messages/": "message",
    "terminals/": "terminal",
    "bulk-jobs/": "bulk_job",
    "reconciliation/discrepancies/": "discrepancy",
    "reconciliation/runs/": "run",
    "account/api-tokens/": "api_token",
    "views/": "saved_view",
    "pauses/": "pause",
    "alerts/rules/": "alert_rule",
    "alerts/notifications/": "alert_notification",
}
# A POST key whose value is another page's query string (the bulk form's "all matching the filter").
NESTED_QUERY = {"query": ("message-list", {"action": "retry", "scope": "filter"})}
IGNORED_KEYS = {"csrfmiddlewaretoken"}
UNKNOWN_KEY = "zz_unknown"


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


HOSTILE_CURSORS = [
    _cursor(["a\x00b", 5]),  # NUL: PostgreSQL refuses it in text (was a DataError under a text sort)
    _cursor([float("inf"), 5]),  # int(inf) raises OverflowError
    _cursor([10**30, 5]),
    _cursor(["2020-01-01T00:00:00+00:00", 10**30]),  # a pk no id can have
    _cursor(["0001-01-01T00:00:00+01:00", 1]),  # before year 1 in UTC
    _cursor("12"),  # unpacks as two characters
    _cursor([[1], {"a": None}]),
    _cursor(["[" * 1400 + "]" * 1400, 1])[:4000],
    "[" * 1500,
    "!!not base64!!",
    "W",
]
HOSTILE = [
    "²",  # str.isdigit() is true, int() fails
    "①",
    "٣",  # int() takes it: 3
    "１２",
    "a\x00b",
    "\x00",
    "0",
    "-1",
    str(2**63),
    str(-(2**63) - 1),
    str(10**30),
    "9" * 4301,  # past int()'s digit limit
    "1e309",
    "nan",
    "0001-01-01",
    "9999-12-31",
    "x" * 5000,
]


# --- the pages -----------------------------------------------------------------------------------


def _excluded(route: str, name: str) -> bool:
    return any(route.startswith(key) or name == key for key in NOT_CONSOLE)


ALL_PATTERNS = [(route, name) for route, name, _ in url_patterns()]
PAGES = [(route, name) for route, name in ALL_PATTERNS if not _excluded(route, name)]


def test_every_exclusion_names_a_real_pattern_and_pages_were_found():
    for key in NOT_CONSOLE:
        assert any(r.startswith(key) or n == key for r, n in ALL_PATTERNS), f"stale NOT_CONSOLE entry {key!r}"
    names = {n for _, n in PAGES}
    assert {"message-list", "message-bulk", "message-export", "audit-list", "reconciliation:cell"} <= names
    assert all(name for _, name in PAGES), "every console pattern needs a name to be reversed"


# --- the world every page is opened in ---------------------------------------------------------------


@pytest.fixture
def world(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CONSOLE_PAGE_SIZE = 2  # so the keyset pages have a next page and real cursors
    terminal = TerminalFactory(code="T0001")
    ingest(terminal, env("a", "A"), env("b", "B"))
    drain_all()
    reports.reported_counts_store(terminal=terminal, counts=[("product", 5, datetime.now(UTC) + timedelta(seconds=1))])
    run = recon.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")
    dead = DeadLetterFactory(message__terminal=terminal)
    for state in (MessageState.FAILED, MessageState.DISCARDED, MessageState.RECEIVED):
        MessageFactory(terminal=terminal, state=state, last_error="boom" if state == MessageState.FAILED else "")
    for i in range(3):
        MetricSampleFactory(at=datetime.now(UTC) - timedelta(minutes=i))
        audit_record(actor="user:x", action="message.retry", object_type="message", object_id="1", reason="r")
    PurgeRunFactory()
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    viewer = UserFactory(username="viewer", group="Viewers")
    clients = {}
    for who, user in (("superuser", superuser), ("viewer", viewer)):
        clients[who] = Client()
        clients[who].force_login(user)
    return {
        "ids": {
            "message": dead.message.pk,
            "terminal": terminal.pk,
            "bulk_job": BulkJobFactory().pk,
            "discrepancy": Discrepancy.objects.filter(run=run).first().pk,
            "run": run.pk,
            "api_token": api_token_create(user=superuser, name="fuzzed")[0].pk,
            "saved_view": SavedViewFactory(owner=viewer, name="fuzzed", shared=True).pk,
            "pause": QueuePauseFactory(scope="entity_type", value="stock").pk,
            "alert_rule": AlertRule.objects.order_by("pk").first().pk,
            "alert_notification": AlertNotificationFactory().pk,
        },
        "clients": clients,
    }


def _url(route: str, name: str, world) -> str:
    if "<int:pk>" not in route:
        return reverse(name)
    owner = route.split("<int:pk>")[0]
    model = PK_OWNER.get(owner)
    assert model, f"{route}: say in PK_OWNER which object its <int:pk> names"
    return reverse(name, kwargs={"pk": world["ids"][model]})


# --- one request --------------------------------------------------------------------------------------


def _send(client: Client, method: str, url: str, pairs, *, htmx: bool = False):
    """One request in a rolled-back savepoint; the response is returned once its whole body was read."""
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    body = urlencode(pairs)  # bytes values are percent-encoded as they are: not always UTF-8
    with transaction.atomic():
        if method == "GET":
            response = client.get(f"{url}?{body}" if body else url, **extra)
        else:
            response = client.post(url, body, content_type="application/x-www-form-urlencoded", **extra)
        if response.streaming:
            b"".join(response.streaming_content)
        transaction.set_rollback(True)
    return response


def _read_keys(client, method, url):
    """The query/form keys the page reads while answering (and the response).

    One unknown key is sent so that a view reading ``request.POST or None`` binds its form.
    """
    seen = set()
    originals = {name: getattr(MultiValueDict, name) for name in ("get", "getlist", "__getitem__", "__contains__")}

    def recorder(name):
        def wrapped(self, key, *args, **kwargs):
            if isinstance(self, QueryDict):  # request.GET / POST (URL reversing uses MultiValueDicts too)
                seen.add(key)
            return originals[name](self, key, *args, **kwargs)

        return wrapped

    with mock.patch.multiple(MultiValueDict, **{name: recorder(name) for name in originals}):
        response = _send(client, method, url, [(UNKNOWN_KEY, "1")])
    return {k for k in seen if isinstance(k, str)} - IGNORED_KEYS, response


def _methods(client, url) -> list[str]:
    response = _send(client, "GET", url, [])
    if response.status_code == 405:
        return [m for m in ("GET", "POST") if m in response["Allow"]]
    post = _send(client, "POST", url, [])
    return ["GET"] if post.status_code == 405 else ["GET", "POST"]


# --- what valid values look like ------------------------------------------------------------------------


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


PROJECT = ("messages.", "terminals.", "reconciliation.", "syncadmin.")


def _form_names_and_choices() -> dict[str, list[str]]:
    """Every field name of the project's forms and filtersets, with the choice values it accepts (in order)."""
    found: dict[str, list[str]] = {}
    project_forms = [f() for f in _subclasses(forms.Form) if f.__module__.startswith(PROJECT)]
    filtersets = [fs for fs in _subclasses(django_filters.FilterSet) if fs.__module__.startswith(PROJECT)]
    project_forms += [fs().form for fs in filtersets if fs._meta.model is not None]  # not the abstract base
    for form in project_forms:
        for name in re.findall(r'name="([^"]+)"', str(form)):
            found.setdefault(name, [])
        for name, field in form.fields.items():
            values = [str(value) for value, _ in getattr(field, "choices", ()) if value not in ("", None)]
            if field.__class__.__name__ == "ModelChoiceField":
                values = [str(getattr(obj, field.to_field_name or "pk")) for obj in field.queryset]
            found.setdefault(name, []).extend(values)
    return found


def _valid_values(world, responses) -> dict[str, list[str]]:
    """Values each key accepts, first the one a valid base uses: choices in declared order, sorts, real cursors."""
    valid = _form_names_and_choices()
    for response in responses:
        context = response.context or {}
        page = context.get("page") if hasattr(context, "get") else None
        if page is not None and hasattr(page, "sortable"):
            valid.setdefault("sort", [])
            valid["sort"] += [s for name in page.sortable for s in (name, f"-{name}")]
            for key, cursor in (("after", page.next_cursor), ("before", page.prev_cursor)):
                if cursor:
                    valid.setdefault(key, []).append(cursor)
    known = {
        "select": str(world["ids"]["message"]),
        "terminal": "T0001",
        "entity_type": "product",
        "reason": "because",
        "note": "known issue",
        "key": "ValueError: price # is negative",
        "confirmed": "1",
        "payload": '{"name": "x"}',
        "code": "T0099",
        "value": "price.upsert",
    }
    for key, value in known.items():
        valid[key] = [value, *valid.get(key, [])]
    return {k: list(dict.fromkeys(v)) or ["x"] for k, v in valid.items()}


# --- strategies ---------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
_iso = st.datetimes(timezones=st.sampled_from([UTC, None])).map(datetime.isoformat)
cursors = st.one_of(
    st.tuples(st.one_of(_json, _iso), st.one_of(st.integers(-(2**70), 2**70), _json)).map(list).map(_cursor),
    _json.map(_cursor),
    st.text(alphabet="ABCDEFabcdef0123456789-_=+/!%", max_size=16),
)
hostile = st.one_of(
    st.sampled_from(HOSTILE + HOSTILE_CURSORS),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=24),  # every code point a URL can carry, NUL too
    st.binary(max_size=8),  # bytes that are not UTF-8
    st.integers(-(2**80), 2**80).map(str),
    st.floats().map(repr),
    st.dates().map(str),
    _iso,
    cursors,
)


def _params(keys, valid, extra_keys):
    """A list of (key, value): a base of valid values for some keys, then 1-3 keys set to anything."""
    base = st.fixed_dictionaries({}, optional={k: st.sampled_from(valid[k]) for k in keys if k in valid})
    names = st.sampled_from(sorted(keys)) | st.sampled_from(sorted(extra_keys))
    any_value = hostile | names.flatmap(lambda k: st.sampled_from(valid.get(k, ["x"])))
    noise = st.lists(st.tuples(names, any_value), min_size=1, max_size=3)
    return st.tuples(base, noise).map(lambda t: [*t[0].items(), *t[1]])


# --- the tests -----------------------------------------------------------------------------------------


def _failure(method, url, pairs, who, outcome) -> str:
    return f"{who} {method} {url} {pairs!r}"[:400] + f" -> {outcome}"


def _check(failures, client, method, url, pairs, who, htmx=False):
    try:
        status = _send(client, method, url, pairs, htmx=htmx).status_code
    except Exception as exc:  # the test client re-raises what the view raised: a 500 in production
        failures.append(_failure(method, url, pairs, who, f"{type(exc).__name__}: {exc}"[:300]))
        return
    if status >= 500:
        failures.append(_failure(method, url, pairs, who, status))


@pytest.fixture
def page_under_test(request, world):
    route, name = request.param
    url = _url(route, name, world)
    root = world["clients"]["superuser"]
    plans = []
    for method in _methods(root, url):
        keys, response = _read_keys(root, method, url)
        plans.append((method, keys, response))
    nested = {}
    for key, (page_name, base) in NESTED_QUERY.items():
        nested_keys, nested_response = _read_keys(root, "GET", reverse(page_name))
        nested[key] = (nested_keys, base, nested_response)
    responses = [r for _, _, r in plans] + [r for _, _, r in nested.values()]
    valid = _valid_values(world, responses)
    own_sorts = set(_valid_values(world, [r for _, _, r in plans]).get("sort", []))
    return {
        "url": url,
        "plans": plans,
        "nested": nested,
        "valid": valid,
        "sorts": sorted({s.removeprefix("-") for s in own_sorts} | {""}),  # "" is the default sort
        "clients": world["clients"],
    }


def _pages():
    return [pytest.param(p, id=p[1]) for p in PAGES]


@pytest.mark.parametrize("page_under_test", _pages(), indirect=True)
def test_hostile_corpus_never_gets_a_5xx(page_under_test):
    """Each parameter alone with each HOSTILE value; hostile cursors under every sort; nested filter query strings."""
    p, failures = page_under_test, []
    root = p["clients"]["superuser"]
    for method, keys, _ in p["plans"]:
        # A POST goes over a valid base (each key's first valid value): a required field's absence
        # would stop every request at the form and hide what a hostile value does further on.
        base = {k: p["valid"][k][0] for k in sorted(keys) if k in p["valid"]} if method == "POST" else {}
        for key in sorted(keys | {UNKNOWN_KEY}):
            for value in HOSTILE:
                _check(failures, root, method, p["url"], [*{**base, key: value}.items()], "superuser")
        for key in sorted(keys & {"after", "before"}):
            # A cursor is decoded against the sort's field: every sortable field (the direction does not matter).
            for sort in p["sorts"]:
                for cursor in HOSTILE_CURSORS:
                    _check(failures, root, method, p["url"], [("sort", sort), (key, cursor)], "superuser")
        if method == "POST":
            for key in keys & set(p["nested"]):
                nested_keys, base, _ = p["nested"][key]
                for inner in sorted(nested_keys):
                    for value in HOSTILE:
                        pairs = [*base.items(), (key, urlencode({inner: value}))]
                        _check(failures, root, method, p["url"], pairs, "superuser")
    assert not failures, f"{len(failures)} hostile requests got a 5xx:\n" + "\n".join(failures[:25])


@pytest.mark.parametrize("page_under_test", _pages(), indirect=True)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_input_never_gets_a_5xx(page_under_test, data):
    p = page_under_test
    all_keys = set().union(*(keys for _, keys, _ in p["plans"]), p["valid"], {UNKNOWN_KEY})
    method, keys, _ = data.draw(st.sampled_from(p["plans"]), label="method")
    pairs = data.draw(_params(keys | {UNKNOWN_KEY}, p["valid"], all_keys), label="params")
    if method == "POST":
        for key in keys & set(p["nested"]):
            nested_keys, base, _ = p["nested"][key]
            if data.draw(st.booleans(), label=f"nested {key}"):
                inner = data.draw(_params(nested_keys, p["valid"], nested_keys), label=f"{key} params")
                pairs = [*base.items(), *pairs, (key, urlencode(inner))]
    who = "superuser" if method == "GET" else data.draw(st.sampled_from(["superuser", "viewer"]), label="user")
    htmx = data.draw(st.booleans(), label="htmx")
    failures = []
    _check(failures, p["clients"][who], method, p["url"], pairs, who, htmx=htmx)
    assert not failures, failures[0]
