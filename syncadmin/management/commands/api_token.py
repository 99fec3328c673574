"""``manage.py api_token create|list|revoke``: API tokens from the server's shell (as the console's user menu)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from syncadmin import selectors
from syncadmin.models import ApiToken
from syncadmin.services import api_token_create, api_token_revoke


class Command(BaseCommand):
    help = "Create (printed once), list or revoke a user's API tokens for the automation API (/api/v1/)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="make a token; it is printed once, on stdout")
        create.add_argument("--user", required=True)
        create.add_argument("--name", required=True, help="what it is for")
        create.add_argument("--expires-days", type=int, default=None, help="default: until revoked")
        listing = sub.add_parser("list", help="a user's tokens")
        listing.add_argument("--user", required=True)
        revoke = sub.add_parser("revoke", help="revoke a token by its id (from list)")
        revoke.add_argument("id", type=int)

    def handle(self, *args, action, **options):
        if action == "revoke":
            token = ApiToken.objects.filter(pk=options["id"]).select_related("user").first()
            if token is None:
                raise CommandError(f"no API token {options['id']}")
            changed = api_token_revoke(token=token, actor="command:api_token")
            self.stderr.write(f"token {token.pk} revoked" if changed else f"token {token.pk} was already revoked")
            return
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        if action == "list":
            for t in selectors.api_tokens_of(user=user):
                state = "revoked" if t.revoked_at else "active"
                expires = t.expires_at.isoformat() if t.expires_at else "never"
                used = t.last_used_at.isoformat() if t.last_used_at else "never"
                self.stdout.write(f"{t.pk}\t{t.prefix}…\t{t.name}\t{state}\texpires {expires}\tlast used {used}")
            return
        days = options["expires_days"]
        if days is not None and not 1 <= days <= 3650:
            raise CommandError("--expires-days must be between 1 and 3650")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        token, secret = api_token_create(user=user, name=options["name"], expires_at=expires_at)
        self.stderr.write(f"token {token.pk} for {user.get_username()}: shown once, stored hashed")
        self.stdout.write(secret)
