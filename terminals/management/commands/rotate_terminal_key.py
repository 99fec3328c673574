from django.core.management.base import BaseCommand, CommandError

from terminals.models import Terminal
from terminals.services import terminal_rotate_key


class Command(BaseCommand):
    help = "Give a terminal a new API key (the old one stops working at once); prints api_key=<key>."

    def add_arguments(self, parser):
        parser.add_argument("code", help="the terminal's code")

    def handle(self, *args, code, **options):
        terminal = Terminal.objects.filter(code=code).first()
        if terminal is None:
            raise CommandError(f"no terminal with code {code}")
        key = terminal_rotate_key(terminal=terminal)
        self.stdout.write(f"new key for terminal {terminal.code}; the old key no longer works")
        self.stdout.write(f"api_key={key}")
