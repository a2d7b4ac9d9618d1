from __future__ import annotations

from django.db import models


class Contact(models.Model):
    """A contact imported by the import-all-contacts function."""

    import_id = models.CharField(max_length=64, db_index=True)
    email = models.EmailField()
    imported_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email
