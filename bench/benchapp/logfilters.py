"""A logging filter for the benchmark settings."""

from __future__ import annotations

import logging


class DropPerTaskLines(logging.Filter):
    """Drops django-q2's two INFO lines per task ("processing ...", "Processed ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return " processing " not in message and not message.startswith("Processed ")
