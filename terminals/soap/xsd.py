"""Strict readers for the XML Schema simple types the contract uses: xs:dateTime, xs:long, xs:int.

One reader for every path (the fast SubmitMessages reader, spyne's deserialisers through
GuardedSoap11, the WS-Security header), because the libraries get them wrong:

- spyne reads a negative offset with minutes the wrong way (``-05:30`` as -04:30, ``-00:30``
  as +00:30), accepts anything after a valid prefix (``...Zjunk``) and rounds fractions;
- ``datetime.fromisoformat`` takes ``+05:75`` as +06:15 and offsets up to ±23:59, and refuses
  ``24:00:00``; Python's ``int()`` takes ``1_000``, ``٣`` (any Unicode digit) and surrounding
  Unicode spaces.

So the lexical form is checked by a regular expression over ASCII digits first (every field and
the offset in range), and only then read by ``datetime.fromisoformat``; what that expression does
not cover (``24:00:00``, a day the month lacks, an instant out of range, a mistake) is read field
by field, which also says what is wrong. The whitespace facet of these types is
"collapse": leading and trailing XML whitespace (space, tab, CR, LF) is dropped, nothing else.

Supported, and what is refused (``XsdValueError``, whose message names the value in the
request's terms and never a Python detail):

- dateTime: ``YYYY-MM-DDThh:mm:ss`` with an optional fraction of any length (kept to the
  microsecond, the rest truncated: WCF sends 7 digits), then ``Z``, ``±hh:mm`` (at most 14:00,
  minutes 00..59) or nothing (= UTC). ``24:00:00`` is the next day's midnight, as XML Schema
  says. Years 0001..9999 only (no sign, no 5-digit years), and the instant itself must fall
  inside them. The result is an aware datetime in UTC: exactly the instant the text names.
- long/int: an optional sign and ASCII digits, inside the type's range.

No app imports: this module is about text, not about the hub.
"""

from __future__ import annotations

import json
import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta

__all__ = [
    "XML_WHITESPACE",
    "XsdValueError",
    "collapse",
    "parse_datetime",
    "parse_integer",
    "quote",
]

XML_WHITESPACE = " \t\r\n"
MAX_OFFSET_MINUTES = 14 * 60

_DATETIME = re.compile(
    r"(?P<year>-?[0-9]{4,})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<tz>Z|(?P<sign>[-+])(?P<tzh>[0-9]{2}):(?P<tzm>[0-9]{2}))?"
)
_PLAIN = re.compile(
    r"([0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
    r"(?:\.([0-9]+))?(Z|[-+](?:0[0-9]|1[0-3]):[0-5][0-9]|[-+]14:00)?"
)
_INTEGER = re.compile(r"[-+]?[0-9]+")
_DATETIME_FORM = "YYYY-MM-DDThh:mm:ss, an optional fraction, then Z, ±hh:mm or nothing"
_INTEGER_RANGES = {"long": 64, "int": 32, "short": 16, "byte": 8}


class XsdValueError(ValueError):
    """A value that is not of its XML Schema type; the message is meant for the caller."""


def collapse(text: str) -> str:
    """The value after XML Schema's whitespace facet "collapse", for a type without inner spaces."""
    return text.strip(XML_WHITESPACE)


def quote(text: str, limit: int = 64) -> str:
    """The value as the fault string shows it: quoted, control characters escaped, clipped."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(shown, ensure_ascii=False)


def parse_datetime(text: str) -> datetime:
    """The instant an xs:dateTime names, as an aware datetime in UTC (see the module docstring)."""
    value = collapse(text)
    # The common case in one regular expression (every field in its range, offsets included,
    # so fromisoformat never sees the "+05:75" it would take) and the standard library's
    # reader; anything else (24:00:00, a bad day of the month, an instant out of range, a
    # mistake) is read field by field below, which says what is wrong.
    match = _PLAIN.fullmatch(value)
    if match is not None and not value.startswith("0000"):
        head, fraction, tz = match.groups()
        if fraction:
            head += "." + (fraction if len(fraction) == 6 else fraction[:6].ljust(6, "0"))
        try:
            return datetime.fromisoformat(head + ("+00:00" if tz is None or tz == "Z" else tz)).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    return _parse_datetime_fields(value)


def _parse_datetime_fields(value: str) -> datetime:
    match = _DATETIME.fullmatch(value)
    if match is None:
        raise XsdValueError(f"{quote(value)} is not an xs:dateTime ({_DATETIME_FORM})")
    f = match.groupdict()
    year_text = f["year"]
    if year_text.startswith("-") or len(year_text) != 4 or year_text == "0000":
        raise XsdValueError(f"{quote(value)} is outside the supported range: years 0001 to 9999 only")
    year, month, day = int(year_text), int(f["month"]), int(f["day"])
    hour, minute, second = int(f["hour"]), int(f["minute"]), int(f["second"])
    fraction = f["fraction"] or ""
    if not 1 <= month <= 12:
        raise XsdValueError(f"{quote(value)} is not an xs:dateTime: there is no month {f['month']}")
    if not 1 <= day <= monthrange(year, month)[1]:
        raise XsdValueError(f"{quote(value)} is not an xs:dateTime: {year_text}-{f['month']} has no day {f['day']}")
    end_of_day = hour == 24
    if end_of_day and (minute or second or fraction.strip("0")):
        raise XsdValueError(f"{quote(value)} is not an xs:dateTime: hour 24 is only allowed as 24:00:00")
    if hour > 24 or minute > 59 or second > 59:
        raise XsdValueError(
            f"{quote(value)} is not an xs:dateTime: {f['hour']}:{f['minute']}:{f['second']} is not a time of day"
        )
    offset = 0
    if f["sign"]:
        tzh, tzm = int(f["tzh"]), int(f["tzm"])
        offset = tzh * 60 + tzm
        if tzm > 59 or offset > MAX_OFFSET_MINUTES:
            raise XsdValueError(
                f"{quote(value)} is not an xs:dateTime: the offset {match['tz']} is not one of -14:00 to +14:00"
            )
        if f["sign"] == "-":
            offset = -offset
    # Microseconds: the first six fraction digits; more precision than that is truncated.
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0
    local = datetime(year, month, day, 0 if end_of_day else hour, minute, second, microsecond)
    try:
        # The local time minus its offset is the instant; 24:00:00 is the next day's midnight.
        # (datetime's own range is the years 0001..9999: leaving it is the only overflow.)
        instant = local + timedelta(days=1 if end_of_day else 0, minutes=-offset)
    except OverflowError:
        raise XsdValueError(
            f"{quote(value)} is outside the supported range: the instant must fall in the years 0001 to 9999 (UTC)"
        ) from None
    return instant.replace(tzinfo=UTC)


def parse_integer(text: str, type_name: str = "long") -> int:
    """The value of an xs:long (or xs:int, xs:short, xs:byte; "integer": unbounded)."""
    value = collapse(text)
    if not _INTEGER.fullmatch(value):
        raise XsdValueError(f"{quote(value)} is not an xs:{type_name} (an optional sign and the digits 0-9 only)")
    bits = _INTEGER_RANGES.get(type_name)
    digits = value.lstrip("+-").lstrip("0")
    if bits is None:
        if len(digits) > 4000:  # Python refuses to convert longer numbers; no field of ours is unbounded
            raise XsdValueError(f"{quote(value)} has more digits than this service reads")
        return int(value)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    number = int(value) if len(digits) <= 20 else None  # longer is out of any range: no need to convert it
    if number is None or not low <= number <= high:
        raise XsdValueError(f"{quote(value)} is out of range for xs:{type_name} ({low} to {high})")
    return number
