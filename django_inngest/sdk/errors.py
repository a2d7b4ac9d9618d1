"""One exception type for everything the SDK protocol layer refuses, naming the field at fault."""

from __future__ import annotations


class SdkProtocolError(ValueError):
    """A value received from, or about to be sent to, an SDK app is not what the protocol allows.

    ``field`` is a path such as ``functions[2].triggers[0].event`` so that a 400 reply, a log
    line or a system check can say exactly what to fix.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
