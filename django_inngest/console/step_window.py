"""Which steps of a long run the run page shows, and how the rest is summarised.

A run with hundreds of steps (a loop of ``import-batch-N`` / ``pause-N``) would draw a page many
screens long in which the one step that matters is hard to find. Past ``LIMIT`` steps the page
shows the first ``HEAD`` steps, the last ``TAIL`` ones, and every *notable* step (failed,
retried, interrupted, timed out or still going, at most ``MAX_NOTABLE``), and folds each run of
ordinary steps in between into one gap line with its count, its first and last step names and
a link to show everything.

The selection is made by the database (three small indexed queries), so a run with 10,000
steps costs the same as one with 60.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q

from django_inngest.models import FunctionRun, StepRun

#: Up to this many steps, all are shown.
LIMIT = 50
HEAD = 5
TAIL = 10
MAX_NOTABLE = 20
#: "Show all" still stops here: beyond it a run is read through the API or the steps list.
SHOW_ALL_MAX = 500

#: Steps worth seeing whatever their position: anything but a first-try, plain success. A wait
#: that timed out stores its None output as SQL NULL (the column is nullable), hence isnull.
NOTABLE = (
    ~Q(status="Completed")
    | Q(attempts__gt=1)
    | Q(kind="wait", status="Completed", output__isnull=True)
)


@dataclass(frozen=True)
class Gap:
    """Consecutive ordinary steps folded into one line."""

    first_position: int
    last_position: int
    first_name: str
    last_name: str

    @property
    def count(self) -> int:
        return self.last_position - self.first_position + 1

    is_gap = True


@dataclass(frozen=True)
class StepSelection:
    steps: list[StepRun]
    total: int
    #: Positions after which a gap follows (position of the shown step -> the gap).
    gaps_after: dict[int, Gap]
    #: Status -> count of the steps not shown (empty when everything is shown).
    hidden_statuses: dict[str, int]
    #: The steps before the first shown one, when the first shown is not position 0.
    leading_gap: Gap | None = None

    @property
    def hidden(self) -> int:
        return sum(gap.count for gap in self.gaps_after.values()) + (
            self.leading_gap.count if self.leading_gap else 0
        )


def select_steps(run: FunctionRun, *, show_all: bool = False) -> StepSelection:
    steps_of_run = StepRun.objects.filter(run=run)
    total = steps_of_run.count()
    if total <= LIMIT or show_all:
        steps = list(steps_of_run.order_by("position")[:SHOW_ALL_MAX])
        gap = _tail_gap(steps_of_run, steps, total)
        return StepSelection(steps, total, gap, _hidden_statuses(steps_of_run, steps, gap))
    ordered = steps_of_run.order_by("position")
    chosen: dict[int, StepRun] = {}
    for step in [
        *ordered[:HEAD],
        *steps_of_run.order_by("-position")[:TAIL],
        *ordered.filter(NOTABLE)[:MAX_NOTABLE],
    ]:
        chosen[step.pk] = step
    steps = sorted(chosen.values(), key=lambda step: step.position)
    gaps = _gaps(steps_of_run, steps)
    leading = gaps.pop(-1, None)
    return StepSelection(
        steps, total, gaps, _hidden_statuses(steps_of_run, steps, gaps), leading_gap=leading
    )


def _gaps(steps_of_run: Any, shown: list[StepRun]) -> dict[int, Gap]:
    """Gaps between shown steps, keyed by the position before them (-1: before the first)."""
    bounds: list[tuple[int, int, int]] = []
    previous = -1
    for step in shown:
        if step.position > previous + 1:
            bounds.append((previous, previous + 1, step.position - 1))
        previous = step.position
    if not bounds:
        return {}
    edges = {p for _, first, last in bounds for p in (first, last)}
    names = dict(
        steps_of_run.filter(position__in=edges).values_list("position", "step_id").order_by()
    )
    return {
        after: Gap(first, last, names.get(first, ""), names.get(last, ""))
        for after, first, last in bounds
    }


def _tail_gap(steps_of_run: Any, shown: list[StepRun], total: int) -> dict[int, Gap]:
    # Only "show all" past SHOW_ALL_MAX leaves steps out: the ones after the last shown.
    if total <= len(shown) or not shown:
        return {}
    last = shown[-1].position
    final = steps_of_run.order_by("-position").values_list("position", "step_id").first()
    following = (
        steps_of_run.filter(position__gt=last).order_by("position").values_list("step_id").first()
    )
    if final is None or following is None:
        return {}
    return {last: Gap(last + 1, final[0], following[0], final[1])}


def _hidden_statuses(
    steps_of_run: Any, shown: list[StepRun], gaps: dict[int, Gap]
) -> dict[str, int]:
    if not gaps:
        return {}
    hidden = steps_of_run.exclude(pk__in=[step.pk for step in shown])
    counts = hidden.values("status").annotate(n=Count("pk")).order_by("status")
    return {row["status"]: row["n"] for row in counts}
