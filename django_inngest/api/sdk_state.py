"""``GET /v0/runs/<run_id>/batch`` and ``/actions``: a run's state, for an SDK app that was
called with ``use_api`` (the state was over ``SDK_INLINE_STATE_MAX_BYTES`` to send inline).

``batch`` is the run's events (its trigger); ``actions`` its settled memos keyed by hashed step
ID, exactly as a call request's ``steps``. Both need the SDK's Bearer (the signing key).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from django_inngest.api.sdk_register import is_authenticated
from django_inngest.engine.remote_state import memo_map
from django_inngest.models import FunctionRun
from django_inngest.sdk import wire


def _run(request: HttpRequest, run_id: str) -> FunctionRun | JsonResponse:
    if not is_authenticated(request):
        return JsonResponse({"error": "Invalid or missing signing key"}, status=401)
    run = FunctionRun.objects.select_related("event").filter(pk=run_id).first()
    if run is None:
        return JsonResponse({"error": f"no run {run_id!r}"}, status=404)
    return run


@require_GET
def run_batch(request: HttpRequest, run_id: str) -> JsonResponse:
    found = _run(request, run_id)
    if isinstance(found, JsonResponse):
        return found
    return JsonResponse([wire.event_payload(found.event.as_payload())], safe=False)


@require_GET
def run_actions(request: HttpRequest, run_id: str) -> JsonResponse:
    found = _run(request, run_id)
    if isinstance(found, JsonResponse):
        return found
    return JsonResponse(memo_map(found.steps.all()))
