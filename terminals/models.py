from django.db import models

# A terminal's health score, best first: the worst of its checks wins.
HEALTH_LEVELS = ("healthy", "degraded", "failing")


class Terminal(models.Model):
    """A store terminal: its identity, its API key (hashed) and what it last told us."""

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    store = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    # SHA-256 hex of the API key: a fast hash is right for a 256-bit random token that is
    # checked on every request (a slow password hash would only burn CPU).
    api_key_hash = models.CharField(max_length=64, blank=True)
    key_rotated_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    app_version = models.CharField(max_length=64, blank=True)
    reported_backlog = models.IntegerField(null=True, blank=True)
    clock_skew_seconds = models.FloatField(null=True, blank=True)
    # The store's opening hours, in its own time zone (an IANA name such as Pacific/Auckland): the
    # "no sales while open" alert watches a till only while its store is open. closes_at before
    # opens_at: open past midnight. Any of them blank: not watched.
    # db_default: the column is added with its default in the database (a safe migration).
    time_zone = models.CharField(max_length=64, blank=True, default="", db_default="")
    opens_at = models.TimeField(null=True, blank=True)
    closes_at = models.TimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        indexes = [models.Index(fields=["last_heartbeat_at"], name="terminal_heartbeat_idx")]

    def __str__(self) -> str:
        return self.code


class UsedNonce(models.Model):
    """A WS-Security nonce a terminal sent, kept while a replay of its request could still pass.

    The unique (terminal, nonce) constraint is the replay check: shared by every web node, and
    atomic, since an insert either happens or fails. Only a SHA-256 of the nonce is kept.
    """

    terminal = models.ForeignKey(Terminal, on_delete=models.CASCADE, related_name="+")
    nonce_digest = models.CharField(max_length=64)
    keep_until = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["terminal", "nonce_digest"], name="used_nonce_unique")]


class TerminalHealthSnapshot(models.Model):
    """Each terminal's health score as of the last once-a-minute sample.

    /metrics and the dashboard read this instead of computing the score per request: its
    error-rate input scans the messages received in the window, which grows with throughput.
    """

    terminal = models.OneToOneField(Terminal, on_delete=models.CASCADE, primary_key=True, related_name="+")
    level = models.CharField(max_length=16)  # one of HEALTH_LEVELS
    reasons = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "syncadmin_terminalhealthsnapshot"  # created by the syncadmin app, which held the model first
