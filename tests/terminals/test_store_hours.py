"""A store's opening hours in its own zone, DST-exact: Pacific/Auckland and America/New_York."""

from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from terminals.store_hours import opened_at, zone_or_none

AKL, NYC = "Pacific/Auckland", "America/New_York"


def at(*args):
    return datetime(*args, tzinfo=UTC)


def test_the_same_instant_is_open_in_auckland_and_closed_in_new_york():
    now = at(2026, 6, 10, 3, 0)  # 15:00 NZST (UTC+12), 23:00 EDT the day before
    assert opened_at(time_zone=AKL, opens=time(8), closes=time(21), now=now) == at(2026, 6, 9, 20, 0)
    assert opened_at(time_zone=NYC, opens=time(8), closes=time(21), now=now) is None


def test_new_york_opening_follows_the_spring_forward():
    # 2026-03-08: clocks go 02:00 EST -> 03:00 EDT. 08:00 local is 13:00 UTC the day before, 12:00 UTC after.
    assert opened_at(time_zone=NYC, opens=time(8), closes=time(20), now=at(2026, 3, 7, 13, 30)) == at(2026, 3, 7, 13)
    assert opened_at(time_zone=NYC, opens=time(8), closes=time(20), now=at(2026, 3, 8, 12, 30)) == at(2026, 3, 8, 12)
    # 12:30 UTC on the Saturday was 07:30 EST: closed (a UTC-5 store would wrongly be open on Sunday too)
    assert opened_at(time_zone=NYC, opens=time(8), closes=time(20), now=at(2026, 3, 7, 12, 30)) is None


def test_auckland_opening_follows_the_autumn_change():
    # 2026-04-05: clocks go 03:00 NZDT -> 02:00 NZST. 08:00 local is 19:00 UTC before, 20:00 UTC after.
    assert opened_at(time_zone=AKL, opens=time(8), closes=time(21), now=at(2026, 4, 3, 19, 30)) == at(2026, 4, 3, 19)
    assert opened_at(time_zone=AKL, opens=time(8), closes=time(21), now=at(2026, 4, 5, 19, 30)) is None
    assert opened_at(time_zone=AKL, opens=time(8), closes=time(21), now=at(2026, 4, 5, 20, 30)) == at(2026, 4, 5, 20)


def test_an_opening_time_in_the_dst_gap_and_a_store_open_past_midnight():
    # 02:30 does not exist in New York on 2026-03-08: the store opens at the instant after the gap.
    since = opened_at(time_zone=NYC, opens=time(2, 30), closes=time(6), now=at(2026, 3, 8, 9, 0))
    assert since is not None and since <= at(2026, 3, 8, 9, 0)
    # Open 22:00-02:00: at 01:00 local it has been open since 22:00 the evening before.
    assert opened_at(time_zone=NYC, opens=time(22), closes=time(2), now=at(2026, 6, 10, 5, 0)) == at(2026, 6, 10, 2)
    assert opened_at(time_zone=NYC, opens=time(22), closes=time(2), now=at(2026, 6, 10, 12, 0)) is None


def test_no_hours_or_an_unknown_zone_is_never_open():
    now = at(2026, 6, 10, 3, 0)
    assert opened_at(time_zone="", opens=time(8), closes=time(21), now=now) is None
    assert opened_at(time_zone="Mars/Olympus", opens=time(8), closes=time(21), now=now) is None
    assert opened_at(time_zone=AKL, opens=None, closes=time(21), now=now) is None
    assert opened_at(time_zone=AKL, opens=time(8), closes=time(8), now=now) is None


@given(st.text(max_size=70))
def test_any_text_is_a_zone_or_none_never_an_error(name):
    zone = zone_or_none(name)
    assert zone is None or str(zone) == name


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.sampled_from([AKL, NYC, "Europe/London", "Asia/Kolkata"]), st.times(), st.times())  # fmt: skip
def test_an_open_store_opened_within_the_last_day_and_not_in_the_future(now, zone, opens, closes):
    since = opened_at(time_zone=zone, opens=opens, closes=closes, now=now)
    assert since is None or timedelta(0) <= now - since <= timedelta(hours=25)
