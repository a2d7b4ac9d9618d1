"""Events in: validate and store them, start the runs they trigger, and hand them to the
pending listeners they may match (which cancels or wakes runs in the engine).

``events.send_events`` is the one entry point shared by ``client.send_sync``, the HTTP event
API, ``step.send_event`` and the engine's system events.
"""
