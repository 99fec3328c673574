"""SyncAdmin settings.

Every knob comes from the environment (12-factor), parsed by django-environ. The defaults
run a safe demo on one machine: SQLite in ``var/`` and django-q2's ORM broker. For
production set at least DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL and Q_BROKER
(see docs/operations/production.md, docs/operations/settings.md and deploy/.env.example).
"""

import ipaddress
import re
from pathlib import Path

import csp.constants
import environ

# Before anything imports spyne, on every Python this project supports (its module says why).
import syncadmin.lib.spyne_compat  # noqa: F401
from syncadmin.lib.logs import logging_config
from syncadmin.lib.secret_key import demo_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env.str("SYNC_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


# --- Core Django -------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or demo_secret_key(VAR_DIR)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "django_tables2",
    "django_filters",
    "django_htmx",
    "axes",
    "syncadmin",
    "terminals",
    "messages.apps.MessagesConfig",
    "reconciliation",
    "ninja",  # the automation API (syncadmin/api/): listed for its Swagger UI files, served as our own
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "syncadmin.urls"
WSGI_APPLICATION = "syncadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases ---------------------------------------------------------------------------
# DATABASE_URL holds the hub's own tables (queue, events, terminals, console). The central
# store (loaded entities + live counters) goes to CENTRAL_DATABASE_URL when set (Oracle in
# the field: oracle://user:password@host:1521/SERVICE, driven by python-oracledb), and
# otherwise lives beside the queue so an apply and its state change share one transaction.
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'syncadmin.sqlite3'}")}
if env.str("CENTRAL_DATABASE_URL", default=""):
    DATABASES["central"] = env.db_url("CENTRAL_DATABASE_URL")
DATABASE_ROUTERS = ["syncadmin.lib.routers.CentralStoreRouter"]


def _tune_database(db: dict) -> None:
    engine = db["ENGINE"]
    if engine.endswith("sqlite3"):
        # WAL lets the console read while a worker writes; IMMEDIATE takes the write lock at
        # BEGIN, so two workers never deadlock upgrading a read lock; the timeout waits
        # for the lock instead of failing with "database is locked".
        db.setdefault("OPTIONS", {}).update(
            {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            }
        )
        # Tests get a file beside it, not an in-memory database that a live server's threads
        # would share with the test's (a console poll once ran inside the test's transaction).
        if (name := Path(db["NAME"])).name != ":memory:":
            db.setdefault("TEST", {}).setdefault("NAME", str(name.with_name(f"test_{name.name}")))
    elif engine.endswith("postgresql"):
        db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        # A connection that died with a database restart is detected before use.
        db.setdefault("CONN_HEALTH_CHECKS", True)
        db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        # The engine's hot statements are prepared on the server (syncadmin/lib/fastsql.py); Django's
        # own queries never are. "off" behind a PgBouncer that pools transactions and is older
        # than 1.21: it cannot carry prepared statements from one transaction to the next.
        # psycopg prepares only what asks for it: its automatic threshold is never reached.
        if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
            db["OPTIONS"].setdefault("prepare_threshold", 2**31 - 1)
    elif engine.endswith("oracle"):
        db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        db.setdefault("CONN_HEALTH_CHECKS", True)


for _db in DATABASES.values():
    _tune_database(_db)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Sync engine -------------------------------------------------------------------------
SYNC_WORKERS = env.int("SYNC_WORKERS", default=2)
SYNC_MAX_ATTEMPTS = env.int("SYNC_MAX_ATTEMPTS", default=5)
SYNC_LEASE_SECONDS = env.int("SYNC_LEASE_SECONDS", default=60)
# The largest batch a terminal may submit in one SubmitMessages call (the contract's limit).
SYNC_MAX_BATCH = env.int("SYNC_MAX_BATCH", default=500)
# How many messages a worker claims and applies in one transaction.
SYNC_CLAIM_BATCH = env.int("SYNC_CLAIM_BATCH", default=100)
SYNC_BACKOFF_BASE_SECONDS = env.float("SYNC_BACKOFF_BASE_SECONDS", default=5.0)
SYNC_BACKOFF_MAX_SECONDS = env.float("SYNC_BACKOFF_MAX_SECONDS", default=900.0)
# A drain task stops claiming after this long so it always ends well inside Q_TIMEOUT.
SYNC_DRAIN_SECONDS = env.float("SYNC_DRAIN_SECONDS", default=20.0)
# Each cluster (manage.py sync_cluster) looks at the due index this often and drains due work itself
# when none of its drains runs, even if no task reached it (one lost with a killed cluster). 0: off.
SYNC_DUE_CHECK_SECONDS = env.float("SYNC_DUE_CHECK_SECONDS", default=5.0)
# PostgreSQL: a drain's batches commit without waiting for their WAL flush. A database crash can
# lose the last fraction of a second of processing, which is redone (a batch is all-or-nothing, an
# apply idempotent); ingest always waits for its flush before a terminal hears Accepted.
SYNC_WORKER_ASYNC_COMMIT = env.bool("SYNC_WORKER_ASYNC_COMMIT", default=True)
# Extra modules whose import registers project-specific message handlers.
SYNC_HANDLER_MODULES = env.list("SYNC_HANDLER_MODULES", default=[])
# Largest SOAP request body accepted, in bytes.
SYNC_MAX_BODY_BYTES = env.int("SYNC_MAX_BODY_BYTES", default=10 * 1024 * 1024)
TERMINAL_OFFLINE_SECONDS = env.int("TERMINAL_OFFLINE_SECONDS", default=300)
# How far ahead of the hub's clock a ReportCounts AsOf or Heartbeat TerminalTime may be; later ones
# are refused (Client.InvalidRequest): a count dated in the future would hide every later report.
SYNC_MAX_CLOCK_SKEW_SECONDS = env.int("SYNC_MAX_CLOCK_SKEW_SECONDS", default=900)

# --- Reconciliation ----------------------------------------------------------------------
# How often the scheduled run compares terminal counts, counters and the central store.
RECONCILIATION_INTERVAL_MINUTES = env.int("RECONCILIATION_INTERVAL_MINUTES", default=15)
# A terminal's latest count report older than this (hub clock) is shown as stale, not compared.
RECONCILIATION_STALE_SECONDS = env.int("RECONCILIATION_STALE_SECONDS", default=3600)
# Runs (and their discrepancy rows) older than this are pruned by the scheduled run.
RECONCILIATION_RETENTION_DAYS = env.int("RECONCILIATION_RETENTION_DAYS", default=30)

# --- django-q2 ---------------------------------------------------------------------------
Q_BROKER = env.str("Q_BROKER", default="orm")
Q_TIMEOUT = env.int("Q_TIMEOUT", default=60)
Q_RETRY = env.int("Q_RETRY", default=90)
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="syncadmin"),
    "workers": SYNC_WORKERS,
    "timeout": Q_TIMEOUT,
    # django-q2 redelivers a task that was not acknowledged after `retry` seconds; it must
    # be longer than `timeout` or a slow task runs twice (checked at start-up).
    "retry": Q_RETRY,
    # The message table is the source of truth, not django-q2's task bookkeeping: a drain
    # task that died is not worth redelivering forever, the sweep schedule re-drains.
    "max_attempts": 2,
    "ack_failures": True,
    "save_limit": 200,
    "recycle": 500,
    "catch_up": False,
    "label": "Workers",
}
if Q_BROKER.startswith(("redis://", "rediss://", "unix://")):
    Q_CLUSTER["redis"] = Q_BROKER
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = env.float("Q_POLL", default=0.2)

# --- Auth, sessions, security --------------------------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# django-axes first: it refuses a locked-out username+IP before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lockouts (syncadmin/lib/login_throttle.py): AXES_FAILURE_LIMIT failures lock one username from one
# address; SYNC_LOGIN_IP_FAILURE_LIMIT failures over any usernames lock the address (a password
# spray; higher, as one office NAT has several staff). Never a username alone: nobody elsewhere
# can lock an account out. Both counts forget failures older than the cool-off; a successful
# login clears that username's failures from that address only.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
SYNC_LOGIN_IP_FAILURE_LIMIT = env.int("SYNC_LOGIN_IP_FAILURE_LIMIT", default=20)
if AXES_FAILURE_LIMIT < 1 or SYNC_LOGIN_IP_FAILURE_LIMIT < 1:
    raise environ.ImproperlyConfigured("AXES_FAILURE_LIMIT and SYNC_LOGIN_IP_FAILURE_LIMIT must be at least 1")
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)  # hours; then the lock lifts itself
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "syncadmin.lib.login_throttle.LoginThrottleHandler"
AXES_RESET_ON_SUCCESS = True
# The client address is the same one /metrics and the logs use (see SYNC_TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "syncadmin.lib.client_address.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The reverse proxies in front of the web nodes (IPs or CIDRs): a request from one of them comes
# from the right-most X-Forwarded-For entry that is not a trusted proxy; any other request comes
# from REMOTE_ADDR and its X-Forwarded-For is ignored. Empty: X-Forwarded-For is never read.
# Used for login lockouts, the /metrics allow-list and log lines (syncadmin/lib/client_address.py).
SYNC_TRUSTED_PROXIES = env.list("SYNC_TRUSTED_PROXIES", default=[])
for _proxy in SYNC_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError:
        raise environ.ImproperlyConfigured(f"SYNC_TRUSTED_PROXIES: {_proxy!r} is not an IP or a CIDR") from None

# Behind TLS in production: secure cookies, HSTS, redirect to https (check --deploy clean).
SECURE_SSL = env.bool("DJANGO_SECURE_SSL", default=False)
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_SSL_REDIRECT = SECURE_SSL
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if SECURE_SSL else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_SSL else None
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: htmx sends the token from the page (templates/base.html).
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- i18n, static --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise serves from it once collectstatic has run
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names after collectstatic (cached for a year: syncadmin/lib/staticfiles.py).
    "staticfiles": {"BACKEND": "syncadmin.lib.staticfiles.HashedStaticFilesStorage"},
}
# Serve straight from the finders when collectstatic has not run (the demo).
WHITENOISE_USE_FINDERS = True

# --- Logging ----------------------------------------------------------------------------------
# JSON lines by default (one object per line: time, level, logger, message, and the context:
# trace_id, terminal, message_id...); LOG_FORMAT=plain for a developer's terminal.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "plain"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
# Processing records (logger messages.processing): one INFO per batch, one WARNING per failed message;
# WARNING keeps only the failures.
LOG_MESSAGE_LEVEL = env.str("LOG_MESSAGE_LEVEL", default="INFO")
LOGGING = logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT, message_level=LOG_MESSAGE_LEVEL)

# --- Console -----------------------------------------------------------------------------------
# Rows per page of the message list and other keyset-paginated tables.
CONSOLE_PAGE_SIZE = env.int("CONSOLE_PAGE_SIZE", default=50)
# The dashboard re-renders its figures through htmx every this many seconds.
CONSOLE_REFRESH_SECONDS = env.int("CONSOLE_REFRESH_SECONDS", default=5)

# --- Console security headers and idle sessions (docs/console.md, "Security headers") ----------
# A console user idle this long is logged out (0: never). The page's own polls (the dashboard's
# refresh, a bulk job's progress) are not activity: syncadmin/lib/middleware.py.
CONSOLE_SESSION_IDLE_MINUTES = env.int("CONSOLE_SESSION_IDLE_MINUTES", default=60)
INSTALLED_APPS += ["csp"]
# After django-htmx's middleware (the idle check reads request.htmx, the user and the messages),
# before django-axes, which stays last.
_after_htmx = MIDDLEWARE.index("django_htmx.middleware.HtmxMiddleware") + 1
MIDDLEWARE[_after_htmx:_after_htmx] = [
    "csp.middleware.CSPMiddleware",
    "syncadmin.lib.middleware.HtmxVaryMiddleware",
    "syncadmin.lib.middleware.IdleSessionMiddleware",
]
# django-csp 4: every script and stylesheet is a static file of ours; no inline script or style,
# no eval (htmx runs with allowEval off), no plugins, no framing, forms post only here.
CONTENT_SECURITY_POLICY = {
    # The terminals' SOAP endpoint and its WSDL are XML for machines, not pages.
    "EXCLUDE_URL_PREFIXES": ["/soap/"],
    "DIRECTIVES": {
        "default-src": [csp.constants.SELF],
        "script-src": [csp.constants.SELF],
        "style-src": [csp.constants.SELF],
        "img-src": [csp.constants.SELF],
        "object-src": [csp.constants.NONE],
        "base-uri": [csp.constants.NONE],
        "form-action": [csp.constants.SELF],
        "frame-ancestors": [csp.constants.NONE],
    },
}

# --- Observability (docs/operations/observability.md) ---------------------------------------------
# /metrics answers only a scraper that presents this bearer token and/or comes from an allowed
# address (IPs or CIDRs, matched against the client address: REMOTE_ADDR, or X-Forwarded-For
# from a trusted proxy only). When both are set, both are required; when neither is set, /metrics
# refuses everyone. /healthz shows its detail to the same token (or a logged-in user).
SYNC_METRICS_TOKEN = env.str("SYNC_METRICS_TOKEN", default="")
SYNC_METRICS_ALLOWED_IPS = env.list("SYNC_METRICS_ALLOWED_IPS", default=[])
# The dashboard's history: one MetricSample a minute, kept this many days.
SYNC_METRIC_SAMPLE_RETENTION_DAYS = env.int("SYNC_METRIC_SAMPLE_RETENTION_DAYS", default=7)
# /healthz: the worker cluster is unhealthy when its last sample is older than this, and the
# queue when its oldest due message has waited longer than this.
SYNC_HEALTHZ_WORKER_STALE_SECONDS = env.int("SYNC_HEALTHZ_WORKER_STALE_SECONDS", default=180)
SYNC_HEALTHZ_BACKLOG_OVERDUE_SECONDS = env.int("SYNC_HEALTHZ_BACKLOG_OVERDUE_SECONDS", default=600)
# Terminal health score: each check is degraded at its first threshold, failing at its second.
SYNC_HEALTH_HEARTBEAT_DEGRADED_SECONDS = env.int(
    "SYNC_HEALTH_HEARTBEAT_DEGRADED_SECONDS", default=TERMINAL_OFFLINE_SECONDS
)
SYNC_HEALTH_HEARTBEAT_FAILING_SECONDS = env.int("SYNC_HEALTH_HEARTBEAT_FAILING_SECONDS", default=3600)
SYNC_HEALTH_BACKLOG_DEGRADED_SECONDS = env.int("SYNC_HEALTH_BACKLOG_DEGRADED_SECONDS", default=300)
SYNC_HEALTH_BACKLOG_FAILING_SECONDS = env.int("SYNC_HEALTH_BACKLOG_FAILING_SECONDS", default=1800)
SYNC_HEALTH_ERROR_WINDOW_SECONDS = env.int("SYNC_HEALTH_ERROR_WINDOW_SECONDS", default=900)
SYNC_HEALTH_ERROR_MIN_MESSAGES = env.int("SYNC_HEALTH_ERROR_MIN_MESSAGES", default=10)
SYNC_HEALTH_ERROR_RATE_DEGRADED = env.float("SYNC_HEALTH_ERROR_RATE_DEGRADED", default=0.05)
SYNC_HEALTH_ERROR_RATE_FAILING = env.float("SYNC_HEALTH_ERROR_RATE_FAILING", default=0.25)
SYNC_HEALTH_APPLY_DEGRADED_SECONDS = env.int("SYNC_HEALTH_APPLY_DEGRADED_SECONDS", default=600)
SYNC_HEALTH_APPLY_FAILING_SECONDS = env.int("SYNC_HEALTH_APPLY_FAILING_SECONDS", default=3600)
SYNC_HEALTH_DRIFT_DEGRADED = env.int("SYNC_HEALTH_DRIFT_DEGRADED", default=1)
SYNC_HEALTH_DRIFT_FAILING = env.int("SYNC_HEALTH_DRIFT_FAILING", default=10)
SYNC_HEALTH_MIN_APP_VERSION = env.str("SYNC_HEALTH_MIN_APP_VERSION", default="")
# OpenTelemetry: off unless the standard variables ask for it. OTEL_TRACES_EXPORTER=otlp|console
# (or an OTLP endpoint) switches it on; OTEL_SDK_DISABLED=true always wins. The OTLP exporter
# reads its own OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout).
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="syncadmin")
_otel_exporter = env.str("OTEL_TRACES_EXPORTER", default="").strip().lower()
if not _otel_exporter and (
    env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="") or env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
):
    _otel_exporter = "otlp"
_otel_disabled = env.bool("OTEL_SDK_DISABLED", default=False) or _otel_exporter == "none"
SYNC_TRACING_EXPORTER = "" if _otel_disabled else _otel_exporter

# Above this many messages a console retry/discard/restore runs as a background job (BulkJob).
CONSOLE_BULK_JOB_THRESHOLD = env.int("CONSOLE_BULK_JOB_THRESHOLD", default=1_000)
# Messages per chunk of a background bulk job; each chunk is one transaction.
CONSOLE_BULK_JOB_CHUNK = env.int("CONSOLE_BULK_JOB_CHUNK", default=1_000)

# --- Alerts (docs/operations/alerts.md): signed webhooks, e-mails, their retries; a sale's entity type.
SYNC_ALERT_WEBHOOK_URLS = env.list("SYNC_ALERT_WEBHOOK_URLS", default=[])
SYNC_ALERT_WEBHOOK_SECRET = env.str("SYNC_ALERT_WEBHOOK_SECRET", default="")  # unset with URLs: check W010
SYNC_ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("SYNC_ALERT_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
SYNC_ALERT_EMAILS = env.list("SYNC_ALERT_EMAILS", default=[])
SYNC_ALERT_RETRY_BASE_SECONDS = env.float("SYNC_ALERT_RETRY_BASE_SECONDS", default=30.0)
SYNC_ALERT_MAX_ATTEMPTS = env.int("SYNC_ALERT_MAX_ATTEMPTS", default=10)
SYNC_ALERT_SALES_ENTITY = env.str("SYNC_ALERT_SALES_ENTITY", default="sale")
SYNC_ALERT_CONSOLE_URL = env.str("SYNC_ALERT_CONSOLE_URL", default="").rstrip("/")  # for a notification's link
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))  # smtp+tls://user:pw@host:587, dummymail://
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="syncadmin@localhost")
# --- Retention ---------------------------------------------------------------------------------
# Processed and Discarded messages (with their events) older than this are purged.
SYNC_RETENTION_DAYS = env.int("SYNC_RETENTION_DAYS", default=30)
# A once dead-lettered message is kept until its dead letter is resolved, then this long.
SYNC_DEADLETTER_RETENTION_DAYS = env.int("SYNC_DEADLETTER_RETENTION_DAYS", default=30)
# Messages deleted per purge transaction: small, so no lock is held long enough to stall ingest.
SYNC_RETENTION_BATCH = env.int("SYNC_RETENTION_BATCH", default=2_000)
# Pause between purge batches, leaving the database to ingest and the workers: at least this long,
# and long enough that the purge works at most SYNC_RETENTION_DUTY_CYCLE of the time (a slow,
# loaded database makes batches slower and so the pauses longer: the purge yields by itself).
SYNC_RETENTION_PAUSE_SECONDS = env.float("SYNC_RETENTION_PAUSE_SECONDS", default=0.05)
SYNC_RETENTION_DUTY_CYCLE = env.float("SYNC_RETENTION_DUTY_CYCLE", default=0.15)
# How often the purge schedule runs, and how long one run may last before it hands over.
SYNC_RETENTION_INTERVAL_MINUTES = env.int("SYNC_RETENTION_INTERVAL_MINUTES", default=15)
SYNC_RETENTION_RUN_SECONDS = env.float("SYNC_RETENTION_RUN_SECONDS", default=40.0)


# --- The automation API (/api/v1/, docs/api.md) -----------------------------------------------------
# Calls per token (or session user) and fixed period (s, m, h, d), counted in the database, so the
# limit holds across every web worker and node. Over it: 429 with Retry-After.
SYNC_API_RATE = env.str("SYNC_API_RATE", default="600/m")
if not re.fullmatch(r"[1-9][0-9]*/[smhd]", SYNC_API_RATE):
    raise environ.ImproperlyConfigured(f"SYNC_API_RATE must be like 600/m (calls per s, m, h, d): {SYNC_API_RATE!r}")
# How long the first answer to a call with an Idempotency-Key is kept (and replayed to its retries).
SYNC_API_IDEMPOTENCY_HOURS = env.int("SYNC_API_IDEMPOTENCY_HOURS", default=24)
