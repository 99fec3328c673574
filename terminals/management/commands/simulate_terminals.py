import json

from django.core.management.base import BaseCommand, CommandError

from terminals.simulator import SimConfig, ensure_terminals, run_simulation


class Command(BaseCommand):
    help = (
        "Drive the SOAP API as N concurrent simulated store terminals (zeep): retail traffic, "
        "heartbeats, counts, updates; prints a summary. Terminals SIM-001.. are created if missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--terminals", type=int, default=3, help="how many terminals (threads)")
        parser.add_argument("--rate", type=float, default=10.0, help="messages per second, per terminal")
        parser.add_argument("--duration", type=float, default=30.0, help="seconds to run")
        parser.add_argument("--url", default="http://127.0.0.1:8000/soap/terminal/v1/", help="the SOAP endpoint")
        parser.add_argument("--bad-fraction", type=float, default=0.02, help="share of bad payloads (0..1)")
        parser.add_argument("--duplicate-fraction", type=float, default=0.03, help="share of re-sent batches")
        parser.add_argument("--batch", type=int, default=100, help="largest batch per SubmitMessages call")
        parser.add_argument("--prefix", default="SIM", help="terminal code prefix")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, **o):
        if o["terminals"] < 1 or o["rate"] <= 0 or o["duration"] <= 0:
            raise CommandError("--terminals, --rate and --duration must be positive")
        if not 0 <= o["bad_fraction"] <= 1 or not 0 <= o["duplicate_fraction"] <= 1:
            raise CommandError("fractions must be between 0 and 1")
        credentials = ensure_terminals(count=o["terminals"], prefix=o["prefix"])
        config = SimConfig(
            url=o["url"],
            terminals=o["terminals"],
            rate=o["rate"],
            duration=o["duration"],
            bad_fraction=o["bad_fraction"],
            duplicate_fraction=o["duplicate_fraction"],
            max_batch=o["batch"],
            seed=o["seed"],
        )
        self.stdout.write(
            f"simulating {o['terminals']} terminal(s) at {o['rate']:g} msg/s each for {o['duration']:g}s "
            f"against {o['url']}"
        )
        summary = run_simulation(config, credentials)
        self.stdout.write(json.dumps(summary.as_dict(), indent=1) if o["json"] else summary.render())
