"""Saved views of the message list (messages/services/saved_views.py)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

SHARE_VIEW_PERM = "queue_messages.share_savedview"  # save and delete team views (Terminal admins, leads)
SAVED_VIEW_NAME_MAX = 80
SAVED_VIEW_QUERY_MAX = 2000


class SavedView(models.Model):
    """A named filter of the message list (its query string), for its owner or the whole team.

    The query is validated through the list's filters when saved and again when opened: filters
    change between releases, and a view saved under an old one says so instead of failing.
    """

    name = models.CharField(max_length=SAVED_VIEW_NAME_MAX)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    shared = models.BooleanField(default=False)  # a team view: in everyone's navigation
    query = models.CharField(max_length=SAVED_VIEW_QUERY_MAX, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="savedview_owner_name_uniq"),
            # Where partial indexes exist (PostgreSQL, SQLite); the service checks it everywhere.
            models.UniqueConstraint(fields=["name"], condition=Q(shared=True), name="savedview_team_name_uniq"),
        ]
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name
