"""Optional add-ons built on django_inngest's public API (middleware, ...)."""
