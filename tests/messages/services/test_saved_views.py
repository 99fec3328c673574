"""Saved views: the rules of saving and deleting, personal and team views, and the filter's validation."""

import pytest
from django.db import IntegrityError, transaction
from django.http import QueryDict
from hypothesis import given, settings
from hypothesis import strategies as st

from messages.filtersets import message_filter_queryset
from messages.models import SavedView
from messages.services.saved_views import (
    SavedViewRefused,
    saved_view_create,
    saved_view_delete,
    saved_view_query_normalise,
)
from syncadmin.models import AuditEntry
from tests.factories import SavedViewFactory, UserFactory

pytestmark = pytest.mark.django_db


def save(owner, name="failed at store 3", query="state=Failed", shared=False):
    return saved_view_create(owner=owner, name=name, query=query, shared=shared, message_filter=message_filter_queryset)


@pytest.fixture
def support():
    return UserFactory(username="sam", group="Support")


@pytest.fixture
def lead():
    return UserFactory(username="alice", group="Terminal admins")


def test_a_personal_view_keeps_the_filters_only(support):
    view = save(support, query="state=Failed&terminal=&after=abc&sort=-received_at&error=timeout")
    assert (view.owner, view.shared, view.query) == (support, False, "error=timeout&state=Failed")
    assert AuditEntry.objects.count() == 0  # a personal view changes nothing the team sees


def test_an_invalid_filter_is_refused_and_nothing_saved(support):
    with pytest.raises(SavedViewRefused, match="not valid") as refused:
        save(support, query="state=Bogus")
    assert refused.value.field == "query" and not refused.value.forbidden
    assert not SavedView.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_a_name_is_required_and_bounded(support, name):
    with pytest.raises(SavedViewRefused) as refused:
        save(support, name=name)
    assert refused.value.field == "name"


def test_a_too_long_filter_is_refused(support):
    with pytest.raises(SavedViewRefused, match="longer") as refused:
        save(support, query="error=" + "x" * 2100)
    assert refused.value.field == "query"


def test_names_are_unique_per_owner_but_not_across_owners(support, lead):
    save(support, name="mine")
    with pytest.raises(SavedViewRefused, match="already"):
        save(support, name="mine", query="state=DeadLettered")
    save(lead, name="mine")  # another person's view may have the same name
    assert SavedView.objects.count() == 2


def test_a_team_view_needs_the_permission(support, lead):
    with pytest.raises(SavedViewRefused) as refused:
        save(support, shared=True)
    assert refused.value.forbidden and not SavedView.objects.exists()
    view = save(lead, name="Morning check", shared=True)
    assert view.shared
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.object_id) == ("user:alice", "savedview.create", str(view.pk))
    assert entry.detail["query"] == "state=Failed"


def test_team_names_are_unique_across_owners(lead):
    other_lead = UserFactory(username="bea", group="Terminal admins")
    save(lead, name="Morning check", shared=True)
    with pytest.raises(SavedViewRefused, match="team view named"):
        save(other_lead, name="Morning check", shared=True)
    save(other_lead, name="Morning check")  # a personal view of that name is fine


def test_the_database_keeps_team_names_unique_too(lead):
    SavedViewFactory(name="Same", shared=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedViewFactory(name="Same", shared=True)


def test_an_owner_deletes_their_own_personal_view_and_nobody_elses(support, lead):
    mine, theirs = save(support, name="mine"), save(lead, name="theirs")
    with pytest.raises(SavedViewRefused) as refused:
        saved_view_delete(view=theirs, user=support)
    assert refused.value.forbidden
    with pytest.raises(SavedViewRefused):
        saved_view_delete(view=mine, user=lead)  # not even an admin deletes someone's personal view
    saved_view_delete(view=mine, user=support)
    assert list(SavedView.objects.values_list("name", flat=True)) == ["theirs"]


def test_a_team_view_is_deleted_only_with_the_permission_and_audited(support, lead):
    team = save(lead, name="team", shared=True)
    with pytest.raises(SavedViewRefused):
        saved_view_delete(view=team, user=support)
    saved_view_delete(view=team, user=UserFactory(username="bea", group="Terminal admins"))
    assert not SavedView.objects.exists()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor")) == [
        ("savedview.create", "user:alice"),
        ("savedview.delete", "user:bea"),
    ]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["state", "q", "after", "sort", "error", "terminal", "page", "x"]),
                       st.lists(st.text(max_size=8), max_size=3), max_size=6))  # fmt: skip
def test_normalising_keeps_exactly_the_non_empty_filters(data):
    q = QueryDict(mutable=True)
    for key, values in data.items():
        q.setlist(key, values)
    kept = QueryDict(saved_view_query_normalise(q.urlencode()))
    for key, values in data.items():
        expected = [] if key in ("after", "before", "sort", "page") else [v for v in values if v != ""]
        assert kept.getlist(key) == expected
    assert saved_view_query_normalise(kept.urlencode()) == kept.urlencode()  # stable
