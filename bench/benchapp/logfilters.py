"""A logging filter for the benchmark settings."""

from __future__ import annotations

import logging


class DropPerTaskLines(logging.Filter):
    """Drops django-q2's INFO lines per task ("Enqueued ...", "processing ...", "Processed ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not (message.startswith(("Processed ", "Enqueued ")) or " processing " in message)
