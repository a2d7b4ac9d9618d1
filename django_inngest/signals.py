"""Signals django_inngest sends. Receivers may be connected by user code."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent once per cancelled run, after the cancelling transaction commits.
#: kwargs: ``run`` (FunctionRun), ``source`` (a CancelSource value: event, api, bulk, admin,
#: cli, timeout, singleton, python), ``reason`` (str, the operator's words, may be empty),
#: ``actor`` (str: the Django user name, "signing key", the CLI's OS user, "event <id>", or
#: empty) and ``cancel_event_id`` (the cancel_on event's internal ID, or None).
#: Sent with ``sender=FunctionRun`` and ``send_robust``,
#: so a failing receiver is logged and never undoes the cancellation. django_inngest's own
#: receiver emits the ``inngest/function.cancelled`` system event.
function_cancelled = Signal()

#: Sent after a run ends in any status (Completed, Failed, Cancelled), after commit.
#: kwargs: ``run``.
function_finished = Signal()
