"""The automation API under /api/v1/ (django-ninja): an interface over the apps' services and selectors.

Nothing imports it but the root URLconf (and django-q2, by dotted path, its task). Each module holds
one family of endpoints (``terminals``, ``messages``, ``dead_letters``, ``bulk_jobs``,
``reconciliation``, ``health``) or what they share: ``problems`` (RFC 9457 errors), ``auth``
(bearer tokens and the session, throttling), ``idempotency`` (the ``Idempotency-Key`` header),
``paging`` (keyset cursors), ``main`` (the NinjaAPI and its OpenAPI document). Docs: docs/api.md.
"""
