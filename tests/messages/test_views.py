"""The message console: pages, htmx partials, actions and who may do them."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from messages.models import CentralEntity, DeadLetter, DeadLetterGroupNote, Message, MessageEvent, MessageState
from syncadmin.models import AuditEntry
from tests.factories import DeadLetterFactory, MessageFactory, TerminalFactory

S = MessageState
pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


# --- access ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/", "/messages/", "/messages/1/", "/dead-letters/", "/terminals/", "/audit/", "/messages/export.csv"]
)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_user_without_group_gets_403(login_as):
    client = login_as(None)
    assert client.get("/messages/").status_code == 403


def test_viewer_cannot_retry_or_discard(login_as):
    dl = DeadLetterFactory()
    client = login_as("Viewers")
    assert client.get(f"/messages/{dl.message.pk}/").status_code == 200
    assert client.post(f"/messages/{dl.message.pk}/retry/").status_code == 403
    assert client.post(f"/messages/{dl.message.pk}/discard/", {"reason": "x"}).status_code == 403
    bulk = client.post("/messages/bulk/", {"action": "retry", "select": [dl.message.pk], "confirmed": "1"})
    assert bulk.status_code == 403
    assert Message.objects.get(pk=dl.message.pk).state == S.DEAD_LETTERED
    assert not AuditEntry.objects.exists()


def test_support_cannot_edit_payload(login_as):
    dl = DeadLetterFactory()
    client = login_as("Support")
    assert client.get(f"/messages/{dl.message.pk}/edit/").status_code == 403
    assert client.post(f"/messages/{dl.message.pk}/edit/", {"payload": "{}", "reason": "x"}).status_code == 403


def test_retry_refused_without_csrf_token(db):
    from tests.factories import UserFactory

    dl = DeadLetterFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="s", group="Support"))
    response = client.post(f"/messages/{dl.message.pk}/retry/", {"reason": "x"})
    assert response.status_code == 403
    assert b"form has expired" in response.content
    assert Message.objects.get(pk=dl.message.pk).state == S.DEAD_LETTERED


# --- list ----------------------------------------------------------------------------------------


def test_list_full_page_and_htmx_partial(login_as):
    MessageFactory.create_batch(3)
    client = login_as("Viewers")
    full = client.get("/messages/")
    assert full.status_code == 200
    assert b"<html" in full.content and b'id="filters"' in full.content
    partial = client.get("/messages/", **HX)
    assert partial.status_code == 200
    assert b"<html" not in partial.content
    assert partial.content.count(b'name="select"') == 3
    assert [t.name for t in partial.templates][0] == "htmx/table.html"
    assert b"{#" not in full.content and b"{%" not in full.content  # no template syntax leaks out


def test_list_filters(login_as):
    t1, t2 = TerminalFactory(code="A1"), TerminalFactory(code="B2")
    keep = MessageFactory(terminal=t1, state=S.FAILED, entity_key="KEEP-9", last_error="boom: price")
    MessageFactory(terminal=t2, state=S.FAILED, entity_key="KEEP-9")
    MessageFactory(terminal=t1, state=S.PROCESSED, entity_key="KEEP-9")
    old = MessageFactory(terminal=t1, state=S.FAILED, received_at=datetime(2020, 1, 1, tzinfo=UTC))
    client = login_as("Viewers")

    def ids(query):
        response = client.get("/messages/?" + query, **HX)
        assert response.status_code == 200
        return {m.pk for m in response.context["page"].rows}

    assert ids("state=Failed&terminal=A1&entity_key=KEEP-9") == {keep.pk}
    assert ids("error=PRICE") == {keep.pk}
    assert ids(f"q={keep.message_id}") == {keep.pk}
    assert ids(f"q={keep.pk}") == {keep.pk}
    assert ids("received_before=2020-01-02") == {old.pk}
    assert keep.pk in ids("received_after=2021-01-01") and old.pk not in ids("received_after=2021-01-01")


def test_invalid_filter_says_so_and_shows_nothing(login_as):
    MessageFactory()
    response = login_as("Viewers").get("/messages/?state=Bogus&received_after=notadate", **HX)
    assert response.status_code == 200
    assert response.context["page"].rows == []
    assert b"not valid" in response.content


def test_keyset_pages_cover_every_row_once(login_as, settings):
    settings.CONSOLE_PAGE_SIZE = 4
    now = datetime.now(UTC)
    # Ties on received_at on purpose: the pk tiebreak must neither skip nor repeat a row.
    made = [MessageFactory(received_at=now - timedelta(seconds=i // 3)) for i in range(10)]
    client = login_as("Viewers")
    seen, url = [], "/messages/"
    for _ in range(5):
        page = client.get(url, **HX).context["page"]
        seen += [m.pk for m in page.rows]
        if not page.next_cursor:
            break
        url = f"/messages/?after={page.next_cursor}"
    assert sorted(seen) == sorted(m.pk for m in made) and len(seen) == len(set(seen))
    expected = sorted(made, key=lambda m: (m.received_at, m.pk), reverse=True)
    assert seen == [m.pk for m in expected]
    # ... and going back from the second page lands on the first.
    first = client.get("/messages/", **HX).context["page"]
    second = client.get(f"/messages/?after={first.next_cursor}", **HX).context["page"]
    back = client.get(f"/messages/?before={second.prev_cursor}", **HX).context["page"]
    assert [m.pk for m in back.rows] == [m.pk for m in first.rows]
    assert back.is_first


def test_sort_by_sequence_ascending(login_as):
    for seq in (5, 1, 3):
        MessageFactory(sequence=seq)
    page = login_as("Viewers").get("/messages/?sort=sequence", **HX).context["page"]
    assert [m.sequence for m in page.rows] == [1, 3, 5]


def test_bad_cursor_falls_back_to_first_page(login_as):
    MessageFactory()
    response = login_as("Viewers").get("/messages/?after=!!garbage", **HX)
    assert response.status_code == 200
    assert len(response.context["page"].rows) == 1
    assert b"not valid any more" in response.content


def test_list_never_counts_the_whole_table(login_as, django_assert_max_num_queries):
    MessageFactory.create_batch(3)
    client = login_as("Viewers")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get("/messages/?state=Received", **HX)
    sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
    assert "COUNT(" not in sql
    assert "LIMIT 51" in sql


def test_count_is_capped(login_as):
    MessageFactory.create_batch(3, state=S.FAILED)
    client = login_as("Viewers")
    assert client.get("/messages/count/?state=Failed").content == b"3 match"


def test_export_streams_filtered_csv(login_as):
    keep = MessageFactory(state=S.FAILED, last_error='bad, "quoted"\nline')
    MessageFactory(state=S.PROCESSED)
    response = login_as("Viewers").get("/messages/export.csv?state=Failed")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "id" and len(rows) == 2
    assert rows[1][0] == str(keep.pk) and rows[1][12] == keep.last_error


# --- detail and single actions -------------------------------------------------------------------


def test_detail_shows_envelope_payload_timeline_and_history(login_as):
    dl = DeadLetterFactory()
    m = dl.message
    MessageEvent.objects.create(
        message=m, from_state="Processing", to_state="DeadLettered", at=datetime.now(UTC), actor="w1",
        reason="price 12 is negative", error_class="ValueError", traceback="Traceback: boom-trace", attempt=5,
    )  # fmt: skip
    sibling = MessageFactory(terminal=m.terminal, entity_key=m.entity_key, sequence=7)
    response = login_as("Viewers").get(f"/messages/{m.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert m.message_id in body and "&quot;price&quot;" in body  # pretty-printed payload
    assert "boom-trace" in body and "attempt 5" in body
    assert sibling.message_id in body
    assert "Before retrying" in body


def test_retry_outlook_warns_when_central_store_is_newer(login_as):
    dl = DeadLetterFactory(message__sequence=3)
    m = dl.message
    CentralEntity.objects.create(
        entity_type=m.entity_type, entity_key=m.entity_key, terminal_code=m.terminal.code,
        last_sequence=9, updated_at=datetime.now(UTC),
    )  # fmt: skip
    response = login_as("Support").get(f"/messages/{m.pk}/")
    assert response.context["outlook"].level == "noop"
    assert "no-op" in response.content.decode()


def test_retry_outlook_flags_bad_json(login_as):
    dl = DeadLetterFactory(message__payload="{not json")
    response = login_as("Support").get(f"/messages/{dl.message.pk}/")
    assert response.context["outlook"].level == "fail"


def test_support_retries_in_place_with_htmx(login_as):
    dl = DeadLetterFactory()
    client = login_as("Support")
    response = client.post(f"/messages/{dl.message.pk}/retry/", {"reason": "price fixed upstream"}, **HX)
    assert response.status_code == 200
    assert b"<html" not in response.content and b'id="message-body"' in response.content
    assert b"queued again" in response.content
    m = Message.objects.get(pk=dl.message.pk)
    assert (m.state, m.attempts) == (S.RECEIVED, 0)
    assert DeadLetter.objects.get(pk=dl.pk).resolution == "retried"
    entry = AuditEntry.objects.get(action="message.retry")
    assert (entry.actor, entry.count, entry.reason, entry.object_id) == (
        "user:support",
        1,
        "price fixed upstream",
        str(m.pk),
    )
    assert MessageEvent.objects.filter(message=m, to_state=S.RECEIVED, actor="user:support").exists()


def test_retry_without_htmx_redirects(login_as):
    dl = DeadLetterFactory()
    response = login_as("Support").post(f"/messages/{dl.message.pk}/retry/")
    assert response.status_code == 302 and response["Location"] == f"/messages/{dl.message.pk}/"


def test_retry_of_processed_message_changes_nothing(login_as):
    m = MessageFactory(state=S.PROCESSED)
    response = login_as("Support").post(f"/messages/{m.pk}/retry/", **HX)
    assert b"Nothing changed" in response.content
    assert Message.objects.get(pk=m.pk).state == S.PROCESSED


def test_discard_requires_a_reason(login_as):
    dl = DeadLetterFactory()
    client = login_as("Support")
    response = client.post(f"/messages/{dl.message.pk}/discard/", {"reason": "  "}, **HX)
    assert b"reason is required" in response.content
    assert Message.objects.get(pk=dl.message.pk).state == S.DEAD_LETTERED
    client.post(f"/messages/{dl.message.pk}/discard/", {"reason": "test data"}, **HX)
    assert Message.objects.get(pk=dl.message.pk).state == S.DISCARDED
    assert AuditEntry.objects.get(action="message.discard").reason == "test data"


def test_edit_and_retry_keeps_the_original(login_as):
    dl = DeadLetterFactory(message__payload='{"price": -1}')
    client = login_as("Terminal admins")
    assert client.get(f"/messages/{dl.message.pk}/edit/").status_code == 200
    bad = client.post(f"/messages/{dl.message.pk}/edit/", {"payload": "{oops", "reason": "fix"})
    assert bad.status_code == 400 and b"Not valid JSON" in bad.content
    ok = client.post(f"/messages/{dl.message.pk}/edit/", {"payload": '{"price": 1}', "reason": "sign typo"})
    assert ok.status_code == 302
    m = Message.objects.get(pk=dl.message.pk)
    assert (m.state, json.loads(m.payload)) == (S.RECEIVED, {"price": 1})
    event = MessageEvent.objects.filter(message=m, to_state=S.RECEIVED).get()
    assert '{"price": -1}' in event.reason and "sign typo" in event.reason
    entry = AuditEntry.objects.get(action="message.edit_payload")
    assert entry.detail["original_payload"] == '{"price": -1}'


def test_edit_refused_unless_dead_lettered(login_as):
    m = MessageFactory(state=S.PROCESSED, payload="{}")
    response = login_as("Terminal admins").post(f"/messages/{m.pk}/edit/", {"payload": "{}", "reason": "x"})
    assert response.status_code == 400 and b"only a dead-lettered" in response.content


# --- bulk ----------------------------------------------------------------------------------------


def test_bulk_confirm_states_the_count_then_acts(login_as):
    dls = DeadLetterFactory.create_batch(3)
    done = MessageFactory(state=S.PROCESSED)
    client = login_as("Support")
    select = [d.message.pk for d in dls] + [done.pk]
    confirm = client.post("/messages/bulk/", {"action": "retry", "select": select}, **HX)
    assert confirm.status_code == 200 and confirm.context["count"] == 3
    assert b"retry 3 messages" in confirm.content
    assert Message.objects.filter(state=S.DEAD_LETTERED).count() == 3  # nothing changed yet
    result = client.post("/messages/bulk/", {"action": "retry", "select": select, "confirmed": "1"}, **HX)
    assert result.context["done"] == 3 and result["HX-Trigger"] == "messagesChanged"
    assert Message.objects.filter(state=S.RECEIVED).count() == 3
    assert AuditEntry.objects.get(action="message.retry").count == 3


def test_bulk_discard_all_matching_filter_needs_reason(login_as):
    t = TerminalFactory(code="Z9")
    DeadLetterFactory.create_batch(2, message__terminal=t)
    other = DeadLetterFactory()
    client = login_as("Support")
    data = {"action": "discard", "scope": "filter", "query": "terminal=Z9&state=DeadLettered"}
    assert client.post("/messages/bulk/", data, **HX).context["count"] == 2
    refused = client.post("/messages/bulk/", {**data, "confirmed": "1"}, **HX)
    assert b"reason is required" in refused.content
    assert Message.objects.filter(state=S.DISCARDED).count() == 0
    client.post("/messages/bulk/", {**data, "confirmed": "1", "reason": "terminal wiped"}, **HX)
    assert set(Message.objects.filter(state=S.DISCARDED).values_list("terminal__code", flat=True)) == {"Z9"}
    assert Message.objects.get(pk=other.message.pk).state == S.DEAD_LETTERED
    entry = AuditEntry.objects.get(action="message.discard")
    assert entry.count == 2 and entry.detail["filters"] == {"terminal": "Z9", "state": "DeadLettered"}


def test_bulk_without_selection_is_a_clear_error(login_as):
    response = login_as("Support").post("/messages/bulk/", {"action": "retry"}, **HX)
    assert response.status_code == 200 and b"Select at least one" in response.content


def test_bulk_over_the_threshold_becomes_a_background_job(login_as, settings, monkeypatch):
    # The old CONSOLE_BULK_MAX refusal is gone: a large selection runs as a job (tests/messages/services/test_bulk.py).
    from messages.models import BulkJob
    from messages.services import bulk as services_bulk

    monkeypatch.setattr(services_bulk, "bulk_job_enqueue", lambda *a: None)
    settings.CONSOLE_BULK_JOB_THRESHOLD = 2
    DeadLetterFactory.create_batch(3)
    client = login_as("Support")
    data = {"action": "retry", "scope": "filter", "query": "state=DeadLettered"}
    assert client.post("/messages/bulk/", data, **HX).context["background"]
    client.post("/messages/bulk/", {**data, "confirmed": "1"}, **HX)
    assert Message.objects.filter(state=S.RECEIVED).count() == 0
    assert BulkJob.objects.get().action == "retry"


# --- dead letters ------------------------------------------------------------------------------


def test_dead_letters_grouped_by_reason_terminal_entity(login_as):
    t = TerminalFactory(code="G1")
    DeadLetterFactory.create_batch(2, message__terminal=t)
    DeadLetterFactory(group_key="KeyError: 'sku'", message__message_type="sale.upsert", message__entity_type="sale")
    client = login_as("Viewers")
    groups = client.get("/dead-letters/").context["table"].data.data
    assert [(g["key"], g["count"]) for g in groups] == [("ValueError: price # is negative", 2), ("KeyError: 'sku'", 1)]
    by_terminal = client.get("/dead-letters/?by=terminal").context["table"].data.data
    assert ("G1", 2) in [(g["key"], g["count"]) for g in by_terminal]
    by_entity = client.get("/dead-letters/?by=entity").context["table"].data.data
    assert {g["key"]: g["count"] for g in by_entity} == {"product": 2, "sale": 1}
    assert client.get("/dead-letters/", **HX).templates[0].name == "htmx/table.html"


def test_group_drill_in_and_group_retry(login_as):
    DeadLetterFactory.create_batch(2)
    odd = DeadLetterFactory(group_key="KeyError: 'sku'")
    client = login_as("Support")
    drill = client.get("/messages/?state=DeadLettered&group=ValueError%3A+price+%23+is+negative", **HX)
    assert len(drill.context["page"].rows) == 2
    query = "state=DeadLettered&group=ValueError%3A+price+%23+is+negative"
    done = client.post(
        "/messages/bulk/", {"action": "retry", "scope": "filter", "query": query, "confirmed": "1"}, **HX
    )
    assert done.context["done"] == 2
    assert Message.objects.get(pk=odd.message.pk).state == S.DEAD_LETTERED


def test_group_note_saved_and_audited(login_as):
    DeadLetterFactory()
    client = login_as("Support")
    response = client.post(
        "/dead-letters/note/", {"grouping": "reason", "key": "ValueError: price # is negative", "note": "ask HQ"}, **HX
    )
    assert response.status_code == 200
    assert DeadLetterGroupNote.objects.get().note == "ask HQ"
    assert AuditEntry.objects.get(action="deadletter.note").reason == "ask HQ"
    assert b"ask HQ" in client.get("/dead-letters/").content
    assert login_as("Viewers").post("/dead-letters/note/", {"grouping": "reason", "key": "k"}).status_code == 403


# --- hostile input: a form error or a notice, never a 500 (issue 15) ---------------------------------

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize("q", ["²", "①", "١٢"])
def test_unicode_digits_search_terminal_ids_only(login_as, q):
    """``"²".isdigit()`` is true and ``int("²")`` fails: the list, the count and the export were 500s."""
    match = MessageFactory(message_id=q)
    MessageFactory()
    client = login_as("Viewers")
    response = client.get("/messages/", {"q": q}, **HX)
    assert response.status_code == 200 and [m.pk for m in response.context["page"].rows] == [match.pk]
    assert client.get("/messages/count/", {"q": q}).content == b"1 matches"
    export = client.get("/messages/export.csv", {"q": q})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert export.status_code == 200 and [r[0] for r in rows[1:]] == [str(match.pk)]


def test_hub_id_search_takes_ascii_digits_only(login_as):
    m = MessageFactory()
    # int() reads Arabic-Indic digits: "٣" silently found the message with id 3.
    response = login_as("Viewers").get("/messages/", {"q": str(m.pk).translate(ARABIC_INDIC)}, **HX)
    assert response.context["page"].rows == []
    assert [x.pk for x in login_as("Viewers").get("/messages/", {"q": str(m.pk)}, **HX).context["page"].rows] == [m.pk]


def test_cursor_with_nul_is_the_link_not_valid_notice(login_as):
    """On PostgreSQL this cursor (["a\\u0000b", 5] under a text sort) was a DataError."""
    m = MessageFactory()
    response = login_as("Viewers").get("/messages/?sort=entity_key&after=WyJhXHUwMDAwYiIsIDVd", **HX)
    assert response.status_code == 200
    assert [x.pk for x in response.context["page"].rows] == [m.pk]
    assert b"not valid any more" in response.content


@pytest.mark.parametrize("bad", [str(10**30), str(-(10**30)), str(2**63), "-1", "0", "²"])
def test_bulk_selection_that_cannot_be_an_id_is_a_form_error(login_as, bad):
    """On SQLite ``select=10**30`` was an OverflowError binding it."""
    dl = DeadLetterFactory()
    response = login_as("superuser").post(
        "/messages/bulk/", {"action": "retry", "select": [dl.message.pk, bad], "confirmed": "1"}
    )
    assert response.status_code == 200 and "Not a valid id" in response.content.decode()
    assert Message.objects.get(pk=dl.message.pk).state == S.DEAD_LETTERED and not AuditEntry.objects.exists()


def test_bulk_over_a_unicode_digit_filter_counts_nothing(login_as):
    DeadLetterFactory()
    response = login_as("superuser").post("/messages/bulk/", {"action": "retry", "scope": "filter", "query": "q=²"})
    assert response.status_code == 200 and response.context["count"] == 0


def test_restore_reason_with_nul_is_refused(login_as):
    """PostgreSQL refuses NUL in text: the reason reached the audit row unchecked (a DataError)."""
    m = MessageFactory(state=S.DISCARDED)
    response = login_as("superuser").post(f"/messages/{m.pk}/restore/", {"reason": "a\x00b"})
    assert response.status_code == 400 and b"reason is not valid" in response.content
    assert Message.objects.get(pk=m.pk).state == S.DISCARDED and not AuditEntry.objects.exists()


def test_edit_with_json_nested_too_deep_is_a_form_error(login_as):
    dl = DeadLetterFactory()
    response = login_as("superuser").post(
        f"/messages/{dl.message.pk}/edit/", {"payload": "[" * 100_000 + "]" * 100_000, "reason": "x"}
    )
    assert response.status_code == 400 and b"nested too deeply" in response.content


def test_detail_of_a_payload_nested_too_deep_shows_it_as_stored(login_as):
    m = MessageFactory(payload="[" * 100_000 + "]" * 100_000)
    assert login_as("Viewers").get(f"/messages/{m.pk}/").status_code == 200


def test_a_dead_letter_nested_too_deep_says_a_retry_would_fail(login_as):
    # The retry outlook parses the payload too (json.loads raised RecursionError there: a 500).
    dl = DeadLetterFactory(message__payload="[" * 100_000 + "]" * 100_000)
    response = login_as("Support").get(f"/messages/{dl.message.pk}/")
    assert response.status_code == 200
    assert b"The payload is not valid JSON (nested too deeply)" in response.content


# --- CSV export safety (issue 15) ------------------------------------------------------------------


def test_export_refuses_invalid_filters_before_streaming(login_as):
    response = login_as("Viewers").get("/messages/export.csv?received_after=99999-01-01&entity_key=a%00b")
    assert response.status_code == 400 and not response.streaming
    assert b"entity_key" in response.content


def test_export_neutralises_formulas(login_as):
    """Terminal-controlled text starting with = + - @ tab or CR would run in a spreadsheet (OWASP)."""
    m = MessageFactory(
        message_id="=1+1",
        entity_key='=HYPERLINK("http://x","y")',
        message_type="+1",
        last_error="@SUM(1)",
        trace_id="\t-1",
        sequence=-5,
        state=S.FAILED,
    )
    plain = MessageFactory(message_id="m-plain", entity_key="SKU-1", sequence=7, state=S.FAILED, last_error="\rboom")
    response = login_as("Viewers").get("/messages/export.csv?state=Failed")
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    cells = {int(r[0]): dict(zip(header, r, strict=True)) for r in rows}
    hostile = cells[m.pk]
    assert hostile["message_id"] == "'=1+1"
    assert hostile["entity_key"] == '\'=HYPERLINK("http://x","y")'
    assert hostile["message_type"] == "'+1" and hostile["last_error"] == "'@SUM(1)" and hostile["trace_id"] == "'\t-1"
    assert hostile["sequence"] == "-5"  # a number the database returns stays a number
    assert cells[plain.pk]["message_id"] == "m-plain" and cells[plain.pk]["entity_key"] == "SKU-1"
    assert cells[plain.pk]["last_error"] == "'\rboom" and cells[plain.pk]["state"] == "Failed"
