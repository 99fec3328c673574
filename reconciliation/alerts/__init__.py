"""Alerts (docs/operations/alerts.md): what each rule measures (``measures``; store hours: terminals.store_hours), the
incidents they open and clear with their outbox rows (``incidents``), the notifications' delivery
(``delivery``) and the console's reads (``selectors``)."""
