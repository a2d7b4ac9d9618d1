"""The engine: advancing runs step by step on django-q2 workers.

``worker`` is a worker task's entry; ``run_handler`` gives one claimed run its turn;
``invocation`` is that turn's memo table and commit protocol; ``step_kinds`` executes each kind
of step; ``steps`` and ``context`` are what handlers see. ``lifecycle``, ``cancellation`` and
``wakeups`` end and wake runs; ``poller``, ``leases`` and ``maintenance`` keep time. See
``docs/architecture.md``.
"""
