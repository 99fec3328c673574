from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from terminals.models import Terminal
from terminals.services import terminal_create


class Command(BaseCommand):
    help = "Create an enabled terminal and print its API key (shown only this once) as api_key=<key>."

    def add_arguments(self, parser):
        parser.add_argument("code", help="the terminal's code: its WS-Security Username")
        parser.add_argument("--name", default="", help="a human name, e.g. 'Store 12 till 3'")
        parser.add_argument("--store", default="", help="the store it belongs to")

    def handle(self, *args, code, name, store, **options):
        code = code.strip()
        if not code or len(code) > 64:
            raise CommandError("CODE must be 1..64 characters")
        if Terminal.objects.filter(code=code).exists():
            raise CommandError(f"terminal {code} already exists; use rotate_terminal_key {code} for a new key")
        try:
            terminal, key = terminal_create(code=code, name=name, store=store)
        except IntegrityError as exc:
            raise CommandError(f"terminal {code} already exists") from exc
        self.stdout.write(f"created terminal {terminal.code}; keep this key, it is not shown again")
        self.stdout.write(f"api_key={key}")
