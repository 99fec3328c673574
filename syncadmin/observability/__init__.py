"""The hub's observability endpoints (/metrics, /healthz) and the once-a-minute sample task: interfaces."""
