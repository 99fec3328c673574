"""xs:dateTime and xs:long/xs:int read exactly, on every path (terminals/soap/xsd.py).

The reader on its own (every offset from -14:00 to +14:00 by the minute, exhaustively and by
hypothesis), then through HTTP: SubmitMessages.CreatedAt on both of its paths (the fast reader
and spyne's), ReportCounts.AsOf and Heartbeat.TerminalTime, each stored as exactly the instant
it names. Run on SQLite and on PostgreSQL (make test runs the suite on both).
"""

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from messages.models import Message
from reconciliation.models import ReportedCount
from terminals.models import Terminal
from terminals.services import terminal_create
from terminals.soap import GuardedSoap11
from terminals.soap.xsd import XsdValueError, _parse_datetime_fields, parse_datetime, parse_integer
from tests.terminals.helpers import SOAP_ENV, envelope, security_header

URL = "/soap/terminal/v1/"
NS = "urn:syncadmin:terminal:v1"
OFFSETS = range(-14 * 60, 14 * 60 + 1)  # minutes: the 1,681 offsets the contract accepts


def offset_text(minutes: int, zero: str = "+00:00") -> str:
    if minutes == 0:
        return zero
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def lexical(instant: datetime, minutes: int, fraction: str = "", zero: str = "+00:00") -> str:
    """The xs:dateTime text naming ``instant`` (whole seconds) in the zone ``minutes`` east of UTC."""
    local = instant.astimezone(UTC).replace(tzinfo=None) + timedelta(minutes=minutes)
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
        + (f".{fraction}" if fraction else "")
        + offset_text(minutes, zero)
    )


def with_fraction(instant: datetime, fraction: str) -> datetime:
    """``instant`` plus the fraction, truncated to the microsecond (what the reader keeps)."""
    return instant + timedelta(microseconds=int(fraction[:6].ljust(6, "0"))) if fraction else instant


# --- the reader ------------------------------------------------------------------------------------


def test_every_offset_from_minus_14_to_plus_14_by_the_minute_names_the_right_instant():
    base = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    for minutes in OFFSETS:
        text = f"2026-01-01T10:00:00{offset_text(minutes)}"
        assert parse_datetime(text) == base - timedelta(minutes=minutes), text
    assert len(OFFSETS) == 1681
    # The example: 10:00 at -05:30 is 15:30 UTC (spyne stored 14:30).
    assert parse_datetime("2026-01-01T10:00:00-05:30") == datetime(2026, 1, 1, 15, 30, tzinfo=UTC)
    assert parse_datetime("2026-01-01T10:00:00-00:30") == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)


def test_every_offset_beyond_14_hours_or_with_minutes_past_59_is_refused():
    for hours, minutes in itertools.product(range(100), range(100)):
        for sign in "+-":
            text = f"2026-01-01T10:00:00{sign}{hours:02d}:{minutes:02d}"
            if hours * 60 + minutes <= 14 * 60 and minutes <= 59:
                continue
            with pytest.raises(XsdValueError, match="not one of -14:00 to \\+14:00"):
                parse_datetime(text)


FRACTIONS = st.text(alphabet="0123456789", min_size=0, max_size=9)
INSTANTS = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)


@given(
    instant=INSTANTS,
    minutes=st.integers(-840, 840),
    fraction=FRACTIONS,
    zero=st.sampled_from(["Z", "+00:00", "-00:00", ""]),
)
def test_the_reader_returns_the_instant_any_lexical_form_names(instant, minutes, fraction, zero):
    text = lexical(instant, minutes, fraction, zero)
    parsed = parse_datetime(text)
    assert parsed == with_fraction(instant, fraction)
    assert parsed.utcoffset() == timedelta(0)
    assert parse_datetime(f" \t{text}\r\n") == parsed  # the whitespace facet


@given(instant=INSTANTS, minutes=st.integers(-840, 840), fraction=FRACTIONS)
def test_the_quick_reading_and_the_field_by_field_reading_agree(instant, minutes, fraction):
    # parse_datetime reads the common form with fromisoformat, the rest field by field.
    text = lexical(instant, minutes, fraction)
    assert _parse_datetime_fields(text) == parse_datetime(text) == with_fraction(instant, fraction)


_SHAPE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})?"


def _mutations():
    """Valid texts with one character replaced, inserted or removed: near misses."""
    valid = st.builds(lexical, INSTANTS, st.integers(-840, 840), FRACTIONS)
    return st.tuples(valid, st.integers(0, 40), st.characters(), st.sampled_from(["replace", "insert", "delete"])).map(
        lambda t: (
            t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
            if t[3] == "replace"
            else t[0][: t[1]] + t[2] + t[0][t[1] :]
            if t[3] == "insert"
            else t[0][: t[1]] + t[0][t[1] + 1 :]
        )
    )


@given(st.one_of(st.text(max_size=40), _mutations()))
def test_the_reader_refuses_in_its_own_words_or_reads_a_plain_form(text):
    try:
        parsed = parse_datetime(text)
    except XsdValueError as exc:
        message = str(exc)
        assert message.startswith('"') and not any(
            w in message for w in ("Traceback", "datetime.", "tzinfo", "range for month")
        )
        return
    # Accepted: the plain lexical form, ASCII digits only, and an aware UTC instant.
    assert re.fullmatch(_SHAPE, text.strip(" \t\r\n"))
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "value"),
    [("7", 7), (" 7 ", 7), ("\n\t-7\r\n", -7), ("+007", 7), ("-0", 0), ("9223372036854775807", 2**63 - 1)],
)
def test_longs_follow_xml_schema(text, value):
    assert parse_integer(text, "long") == value


@pytest.mark.parametrize(
    "text", ["7.0", "abc", "1_000", "٣", "১", "\u00a07", "7\u2003", "1e3", "0x1F", "", " ", "+", "--7", "7 7"]
)
def test_what_python_int_accepts_but_xml_schema_does_not_is_refused(text):
    with pytest.raises(XsdValueError, match="is not an xs:long"):
        parse_integer(text, "long")


def test_ranges_are_the_types_ranges():
    assert parse_integer("-2147483648", "int") == -(2**31)
    for text, type_name in [("2147483648", "int"), ("9223372036854775808", "long"), ("-9223372036854775809", "long")]:
        with pytest.raises(XsdValueError, match="out of range"):
            parse_integer(text, type_name)
    assert parse_integer("0" * 100 + "42", "int") == 42  # leading zeros are still the number
    with pytest.raises(XsdValueError, match="out of range"):
        parse_integer("9" * 100_000, "long")  # Python's int() would refuse this with its own words


@given(st.integers(-(2**63), 2**63 - 1), st.sampled_from(["", " ", "\t", "\n"]), st.sampled_from(["", "+"]))
def test_every_long_reads_back(number, space, plus):
    text = f"{space}{plus if number >= 0 else ''}{number}{space}"
    assert parse_integer(text, "long") == number


# --- through HTTP: every path stores the instant named ---------------------------------------------

HTTP_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
_ids = itertools.count()


def _post(client, key: str, body: str):
    data = envelope(body, security_header("XSD", key)).encode("utf-8")
    response = client.post(URL, data=data, content_type="text/xml; charset=utf-8")
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is None, fault.findtext("faultstring")
    assert response.status_code == 200
    return root


@pytest.fixture
def terminal_key(db):
    return terminal_create(code="XSD")


@pytest.mark.django_db
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "spyne"])
@HTTP_SETTINGS
@given(instant=INSTANTS, minutes=st.integers(-840, 840), fraction=FRACTIONS)
def test_submit_messages_stores_the_instant_created_at_names(
    client, monkeypatch, terminal_key, fast, instant, minutes, fraction
):
    monkeypatch.setattr(GuardedSoap11, "fast_submit", fast)
    terminal, key = terminal_key
    mid = f"x{next(_ids)}"
    text = lexical(instant, minutes, fraction)
    body = (
        f"<t:SubmitMessages><t:messages><t:SyncMessage><t:MessageId>{mid}</t:MessageId>"
        "<t:MessageType>product.upsert</t:MessageType><t:EntityKey>K</t:EntityKey><t:Sequence>1</t:Sequence>"
        f"<t:CreatedAt>{text}</t:CreatedAt><t:Payload>{{}}</t:Payload></t:SyncMessage></t:messages></t:SubmitMessages>"
    )
    _post(client, key, body)
    assert Message.objects.get(terminal=terminal, message_id=mid).created_at == with_fraction(instant, fraction)


PAST = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)


@pytest.mark.django_db
@HTTP_SETTINGS
@given(instant=PAST, minutes=st.integers(-840, 840), fraction=FRACTIONS)
def test_report_counts_stores_the_instant_as_of_names(client, terminal_key, instant, minutes, fraction):
    terminal, key = terminal_key
    entity = f"e{next(_ids)}"
    body = (
        f"<t:ReportCounts><t:counts><t:EntityCount><t:EntityType>{entity}</t:EntityType><t:Count>3</t:Count>"
        f"<t:AsOf>{lexical(instant, minutes, fraction)}</t:AsOf></t:EntityCount></t:counts></t:ReportCounts>"
    )
    _post(client, key, body)
    assert ReportedCount.objects.get(terminal=terminal, entity_type=entity).as_of == with_fraction(instant, fraction)


@pytest.mark.django_db
@HTTP_SETTINGS
@given(
    ago=st.integers(-800, 10 * 86400), minutes=st.integers(-840, 840), fraction=FRACTIONS
)  # up to 800 s ahead: inside the default 900 s skew allowance
def test_heartbeat_reads_terminal_time_exactly_so_the_clock_skew_is_exact(client, terminal_key, ago, minutes, fraction):
    terminal, key = terminal_key
    instant = timezone.now().replace(microsecond=0) - timedelta(seconds=ago)
    body = (
        "<t:Heartbeat><t:info><t:AppVersion>1</t:AppVersion>"
        f"<t:TerminalTime>{lexical(instant, minutes, fraction)}</t:TerminalTime></t:info></t:Heartbeat>"
    )
    _post(client, key, body)
    terminal = Terminal.objects.get(pk=terminal.pk)
    # Skew = terminal time - hub time of the heartbeat, to the microsecond: a half-hour zone read
    # wrong would be off by 3,600 s.
    assert (
        terminal.clock_skew_seconds == (with_fraction(instant, fraction) - terminal.last_heartbeat_at).total_seconds()
    )


def test_a_terminal_in_minus_05_30_with_a_correct_clock_shows_no_skew(client, terminal_key):
    terminal, key = terminal_key
    now = timezone.now()
    body = (
        "<t:Heartbeat><t:info><t:AppVersion>1</t:AppVersion>"
        f"<t:TerminalTime>{lexical(now.replace(microsecond=0), -330)}</t:TerminalTime></t:info></t:Heartbeat>"
    )
    _post(client, key, body)
    assert abs(Terminal.objects.get(pk=terminal.pk).clock_skew_seconds) < 5  # spyne's reading: -3,600
