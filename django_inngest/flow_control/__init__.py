"""Flow-control options (inngest-py's value classes), validated as Inngest validates them, and
their registration JSON: ``options``, ``config``, ``fields``."""
