"""A store's opening hours in its own time zone: is it open now, and since when (DST-exact)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_or_none(name: str) -> ZoneInfo | None:
    """The IANA zone called ``name``, or None when there is none of that name."""
    if not name or "\x00" in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path-like name; OSError: a folder ("America")
        return None


def opened_at(*, time_zone: str, opens: time | None, closes: time | None, now: datetime) -> datetime | None:
    """When the store's current opening began (aware), or None when it is closed at ``now`` (or has no hours).

    Local wall-clock times are turned into instants in the store's zone on the day they fall, so a
    DST change moves them with the store (08:00 is 08:00 local before and after). ``closes``
    before ``opens``: the store is open past midnight. Equal: never open.
    """
    zone = zone_or_none(time_zone)
    if zone is None or opens is None or closes is None or opens == closes:
        return None
    local = now.astimezone(zone)
    today, clock = local.date(), local.time().replace(tzinfo=None)
    if opens < closes:
        start_day = today if opens <= clock < closes else None
    elif clock >= opens:  # past midnight: open from ``opens`` today…
        start_day = today
    elif clock < closes:  # …or since ``opens`` yesterday
        start_day = today - timedelta(days=1)
    else:
        start_day = None
    if start_day is None:
        return None
    # An opening time in a DST gap (02:30 on the spring-forward night) becomes the instant after it.
    return datetime.combine(start_day, opens, tzinfo=zone)
