"""A table for the raw django-q2 baseline that writes one row per task (steps.py ``raw_write``)."""

from __future__ import annotations

from django.db import models


class Mark(models.Model):
    batch = models.CharField(max_length=32)
    done_at = models.DateTimeField()

    class Meta:
        indexes = (models.Index(fields=("batch",), name="bench_mark_batch"),)

    def __str__(self) -> str:
        return f"{self.batch} {self.done_at}"
