"""Saved views in the console: save from the message list, the Views menu, open (re-validated), list, delete."""

import pytest

from messages.models import SavedView
from tests.factories import SavedViewFactory, UserFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_the_message_list_offers_the_save_form_with_its_filters(login_as):
    html = login_as("Viewers").get("/messages/?state=Failed&terminal=").content.decode()
    assert 'id="save-view-form"' in html
    assert '<input type="hidden" name="query" value="state=Failed&amp;terminal=" form="save-view-form">' in html
    assert 'name="shared"' not in html  # a Viewer may not save for the team: not offered


def test_a_viewer_saves_a_personal_view_and_finds_it_in_the_menu(login_as):
    client = login_as("Viewers")
    response = client.post("/views/save/", {"name": "stuck", "query": "state=Failed"}, **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Saved “stuck”" in html and 'id="views-menu" hx-swap-oob="true"' in html  # the menu, refreshed
    view = SavedView.objects.get()
    assert (view.owner, view.shared, view.query) == (client.user, False, "state=Failed")
    page = client.get("/").content.decode()
    assert f'href="/views/{view.pk}/">stuck</a>' in page
    opened = client.get(f"/views/{view.pk}/")
    assert opened.status_code == 302 and opened["Location"] == "/messages/?state=Failed"


def test_an_invalid_filter_or_name_is_said_not_saved(login_as):
    client = login_as("Support")
    response = client.post("/views/save/", {"name": "bad", "query": "state=Nope"}, **HX)
    assert response.status_code == 200 and "Not saved: the filter is not valid" in response.content.decode()
    response = client.post("/views/save/", {"name": "", "query": "state=Failed"})
    assert response.status_code == 400 and b"Not saved" in response.content
    response = client.post("/views/save/", {"name": "x" * 81, "query": ""})
    assert response.status_code == 400
    assert not SavedView.objects.exists()


def test_a_team_view_takes_the_permission_checked_on_the_server(login_as):
    response = login_as("Support").post("/views/save/", {"name": "team", "query": "", "shared": "on"})
    assert response.status_code == 403 and not SavedView.objects.exists()


def test_a_team_view_is_in_everyones_menu(login_as):
    SavedViewFactory(name="Morning check", shared=True, owner=UserFactory(username="lead", group="Terminal admins"))
    SavedViewFactory(name="someone else's", owner=UserFactory(username="other", group="Support"))
    html = login_as("Viewers").get("/messages/").content.decode()
    assert "Morning check" in html and "someone else&#x27;s" not in html


def test_a_stale_view_says_its_filter_changed_instead_of_failing(login_as):
    client = login_as("Viewers")
    view = SavedViewFactory(owner=client.user, query="state=Archived")  # a state that no longer exists
    response = client.get(f"/views/{view.pk}/")
    assert response.status_code == 200
    assert b'id="stale-view"' in response.content and b"state=Archived" in response.content


def test_another_users_personal_view_is_not_found(login_as):
    view = SavedViewFactory(owner=UserFactory(username="other", group="Support"))
    client = login_as("Terminal admins")
    assert client.get(f"/views/{view.pk}/").status_code == 404
    assert client.post(f"/views/{view.pk}/delete/").status_code == 404
    assert SavedView.objects.filter(pk=view.pk).exists()


def test_delete_own_view_and_team_views_with_the_permission(login_as):
    client = login_as("Support")
    mine = SavedViewFactory(owner=client.user)
    team = SavedViewFactory(shared=True, owner=UserFactory(username="lead", group="Terminal admins"))
    listing = client.get("/views/").content.decode()
    assert f"/views/{mine.pk}/delete/" in listing and f"/views/{team.pk}/delete/" not in listing
    assert client.post(f"/views/{team.pk}/delete/").status_code == 403
    assert client.post(f"/views/{mine.pk}/delete/").status_code == 302
    assert list(SavedView.objects.values_list("pk", flat=True)) == [team.pk]
    assert client.get(f"/views/{mine.pk}/delete/").status_code == 405  # POST only (CSRF-checked)


def test_the_list_page_filters_and_answers_htmx_with_the_table(login_as):
    client = login_as("Viewers")
    SavedViewFactory(owner=client.user, name="alpha")
    SavedViewFactory(owner=client.user, name="beta")
    table = client.get("/views/?name=alp").content.decode().split('id="saved-view-table"')[1]
    assert ">alpha<" in table and ">beta<" not in table
    fragment = client.get("/views/?shared=true", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table-container")
    assert fragment.content.decode().lstrip().startswith('<div id="table-container"')
    assert b"No saved view yet" in fragment.content
    assert client.get("/views/?shared=maybe").status_code == 200  # an invalid filter: no rows and a notice
