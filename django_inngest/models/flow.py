"""Flow control's own tables: batched events, concurrency slots, throttle and rate-limit state,
skipped runs and cron schedules.

Each is written in the transaction that makes the decision it records, and every lookup is by
key (an index), so 10,000 pending keys cost what 10 do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import IntegrityError, models
from django.db.models import Count, Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from django_inngest import database
from django_inngest.models.choices import RunStatus, SkipReason
from django_inngest.models.events import Event
from django_inngest.models.functions import FunctionRegistration
from django_inngest.models.runs import FunctionRun


class RunEvent(models.Model):
    """An event of a batched run, in order (``ctx.events``); the first is also ``run.event``."""

    run = models.ForeignKey(
        FunctionRun, on_delete=models.CASCADE, related_name="batch", verbose_name=_("run")
    )
    event = models.ForeignKey(
        Event, on_delete=models.PROTECT, related_name="batched_in", verbose_name=_("event")
    )
    position = models.PositiveIntegerField(_("position"))

    class Meta:
        verbose_name = _("batched event")
        verbose_name_plural = _("batched events")
        ordering = ("run", "position")
        constraints = (
            models.UniqueConstraint(fields=("run", "position"), name="inngest_runevent_position"),
        )

    def __str__(self) -> str:
        return f"{self.run_id} #{self.position}: {self.event_id}"


class ConcurrencySlotQuerySet(models.QuerySet["ConcurrencySlot"]):
    def free(self, key: str, limit: int, now: datetime) -> ConcurrencySlotQuerySet:
        """Slots of ``key`` within ``limit`` that no live run holds: empty, or held by a run
        that is no longer Running under that owner's unexpired lease (paused, ended, or its
        worker presumed dead). Releasing a slot therefore costs no write."""
        return self.filter(key=key, index__lt=limit).filter(
            Q(run_id__isnull=True) | ~Exists(_live_holder(now))
        )

    def acquire(
        self, keys: Sequence[tuple[str, int]], run_id: str, owner: str, now: datetime
    ) -> str | None:
        """Take one free slot of every (key, limit) for ``run_id`` under ``owner``, all or
        none; returns None, or the first key that has no free slot. Call inside the claim's
        transaction; ``skip_locked`` lets concurrent claimers pass each other."""
        taken: list[ConcurrencySlot] = []
        for key, limit in keys:
            slot = self._free_one(key, limit, now)
            if slot is None:
                return key
            taken.append(slot)
        self.hold([(slot, run_id) for slot in taken], owner)
        return None

    def _free_one(self, key: str, limit: int, now: datetime) -> ConcurrencySlot | None:
        found = self.take_free(key, limit, now, 1)
        return found[0] if found else None

    def take_free(self, key: str, limit: int, now: datetime, count: int) -> list[ConcurrencySlot]:
        """Up to ``count`` free slots of ``key``, row-locked for the caller's transaction (a
        batch of runs is admitted with one such query per key)."""
        found = list(
            self.free(key, limit, now).select_for_update(skip_locked=True).order_by("index")[:count]
        )
        if len(found) < count and self._create_missing(key, limit):
            found = list(
                self.free(key, limit, now)
                .select_for_update(skip_locked=True)
                .order_by("index")[:count]
            )
        return found

    def take_free_many(
        self, wanted: dict[str, tuple[int, int]], now: datetime
    ) -> dict[str, list[ConcurrencySlot]]:
        """``take_free`` for many keys at once: for each key (its limit, how many slots are
        wanted) the free slots, lowest first, row-locked for the caller's transaction. One
        query (two more the first time a key is seen, to create its slots)."""
        if not wanted:
            return {}
        found = self._free_of(wanted, now)
        short = [k for k, (limit, count) in wanted.items() if len(found.get(k, [])) < count]
        if short and self._create_missing_many({k: wanted[k][0] for k in short}):
            found = self._free_of(wanted, now)
        return {key: found.get(key, [])[:count] for key, (_, count) in wanted.items()}

    def _free_of(
        self, wanted: dict[str, tuple[int, int]], now: datetime
    ) -> dict[str, list[ConcurrencySlot]]:
        within = Q()
        for key, (limit, _count) in wanted.items():
            within |= Q(key=key, index__lt=limit)
        rows = (
            self.filter(within)
            .filter(Q(run_id__isnull=True) | ~Exists(_live_holder(now)))
            .select_for_update(skip_locked=True)
            .order_by("key", "index")
        )
        found: dict[str, list[ConcurrencySlot]] = defaultdict(list)
        for slot in rows:
            found[slot.key].append(slot)
        return found

    def _create_missing_many(self, limits: dict[str, int]) -> bool:
        counts = dict(
            self.filter(key__in=list(limits))
            .values_list("key")
            .annotate(n=Count("pk"))
            .values_list("key", "n")
        )
        missing = [k for k, limit in limits.items() if counts.get(k, 0) < limit]
        if not missing:
            return False
        with database.atomic():
            ConcurrencySlot.objects.bulk_create(
                [ConcurrencySlot(key=k, index=i) for k in missing for i in range(limits[k])],
                ignore_conflicts=True,
            )
        return True

    def hold(self, slots: Sequence[tuple[ConcurrencySlot, str]], owner: str) -> None:
        """Give each slot to its run (one statement for a batch)."""
        for slot, run_id in slots:
            slot.run_id, slot.owner = run_id, owner
        if slots:
            ConcurrencySlot.objects.bulk_update([slot for slot, _ in slots], ["run_id", "owner"])

    def _create_missing(self, key: str, limit: int) -> bool:
        """A key's slots are created when first needed (and never removed: a lower limit just
        stops using the higher ones). True if any was missing."""
        if self.filter(key=key, index__lt=limit).count() >= limit:
            return False
        with database.atomic():
            ConcurrencySlot.objects.bulk_create(
                [ConcurrencySlot(key=key, index=i) for i in range(limit)], ignore_conflicts=True
            )
        return True

    def held(self, key: str, now: datetime) -> int:
        """How many slots of ``key`` live runs hold now (for the admin and the bench)."""
        return self.filter(key=key, run_id__isnull=False).filter(Exists(_live_holder(now))).count()


def _live_holder(now: datetime) -> models.QuerySet[FunctionRun]:
    """The slot's run, if it is still Running under the owner that took the slot."""
    return FunctionRun.objects.filter(
        pk=OuterRef("run_id"),
        status=RunStatus.RUNNING,
        lease_owner=OuterRef("owner"),
        lease_expires_at__gt=now,
    )


class ConcurrencySlot(models.Model):
    """One of a concurrency key's ``limit`` slots, and the run holding it, if any."""

    key = models.CharField(_("key"), max_length=80)
    index = models.PositiveIntegerField(_("slot"))
    run_id = models.CharField(_("held by run"), max_length=26, null=True, blank=True)  # noqa: DJ001
    owner = models.CharField(_("lease owner"), max_length=64, blank=True, default="")

    objects = ConcurrencySlotQuerySet.as_manager()

    class Meta:
        verbose_name = _("concurrency slot")
        verbose_name_plural = _("concurrency slots")
        constraints = (
            models.UniqueConstraint(fields=("key", "index"), name="inngest_slot_key_index"),
        )

    def __str__(self) -> str:
        return f"{self.key}[{self.index}]"


class FlowLimitQuerySet(models.QuerySet["FlowLimit"]):
    def take(
        self, key: str, *, capacity: int, interval: timedelta, now: datetime, queue: bool = False
    ) -> datetime | None:
        """GCRA, as Inngest's throttle and rate limit: up to ``capacity`` at once, then one per
        ``interval``. Takes a place and returns None, or returns when to try again.

        With ``queue`` (throttle), refused callers are spaced ``interval`` apart in the order
        they were refused, so a queue of waiting runs comes back one at a time, not as a herd.
        The state row is locked for the caller's transaction."""
        return self.take_many(key, [queue], capacity=capacity, interval=interval, now=now)[0]

    def take_many(
        self, key: str, queue: Sequence[bool], *, capacity: int, interval: timedelta, now: datetime
    ) -> list[datetime | None]:
        """``take`` for several callers in order (a batch of runs), in two statements;
        ``queue`` says, per caller, whether a refusal joins the queue's tail (a first refusal)
        or retries as soon as GCRA allows (a caller whose turn came a moment early)."""
        with database.atomic():
            row = self._locked(key, now)
            results: list[datetime | None] = []
            for joins_queue in queue:
                start = max(row.tat, now)
                allow_at = start - interval * (capacity - 1)
                if allow_at <= now:
                    row.tat = start + interval
                    results.append(None)
                elif joins_queue:
                    retry_at = max(allow_at, row.queue_tail or allow_at)
                    row.queue_tail = retry_at + interval
                    results.append(retry_at)
                else:
                    results.append(allow_at)
            row.save(update_fields=["tat", "queue_tail"])
        return results

    def _locked(self, key: str, now: datetime) -> FlowLimit:
        state: FlowLimit | None = self.select_for_update().filter(key=key).first()
        if state is not None:
            return state
        try:
            with database.atomic():
                return FlowLimit.objects.create(key=key, tat=now)
        except IntegrityError:  # another sender created it first
            return FlowLimit.objects.select_for_update().get(key=key)


class FlowLimit(models.Model):
    """The theoretical arrival time of one throttle or rate-limit key (GCRA's only state)."""

    key = models.CharField(_("key"), max_length=80, primary_key=True)
    tat = models.DateTimeField(_("theoretical arrival time"))
    queue_tail = models.DateTimeField(
        _("queue tail"), null=True, blank=True, help_text=_("When the last refused caller retries.")
    )

    objects = FlowLimitQuerySet.as_manager()

    class Meta:
        verbose_name = _("flow limit")
        verbose_name_plural = _("flow limits")

    def __str__(self) -> str:
        return self.key


def gcra_capacity(limit: int, burst: int) -> int:
    """Throttle: ``limit + burst`` start at once from idle (Inngest's code)."""
    return max(1, limit + burst)


def rate_limit_capacity(limit: int) -> int:
    """Rate limit: a burst of ``limit / 10`` (integer division), so ``limit // 10 + 1`` at once."""
    return limit // 10 + 1


def interval_of(period: timedelta, limit: int) -> timedelta:
    return period / max(1, limit)


class SkippedRun(models.Model):
    """An event that triggered a function but started no run, and why."""

    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="skipped_runs", verbose_name=_("event")
    )
    function = models.ForeignKey(
        FunctionRegistration,
        to_field="function_id",
        db_column="function_id",
        on_delete=models.CASCADE,
        related_name="skipped_runs",
        verbose_name=_("function"),
    )
    reason = models.CharField(_("reason"), max_length=16, choices=SkipReason.choices)
    detail = models.CharField(_("detail"), max_length=255, blank=True, default="")
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("skipped run")
        verbose_name_plural = _("skipped runs")
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("function", "-created_at"), name="inngest_skip_fn"),)

    def __str__(self) -> str:
        return f"{self.function_id} {self.get_reason_display()} ({self.event_id})"


class CronScheduleQuerySet(models.QuerySet["CronSchedule"]):
    def due(self, now: datetime) -> CronScheduleQuerySet:
        return self.filter(next_tick_at__lte=now).order_by("next_tick_at")


class CronSchedule(models.Model):
    """A function's cron trigger, with its next tick; synced from code."""

    function = models.ForeignKey(
        FunctionRegistration,
        to_field="function_id",
        db_column="function_id",
        on_delete=models.CASCADE,
        related_name="schedules",
        verbose_name=_("function"),
    )
    cron = models.CharField(_("cron"), max_length=300)
    jitter = models.CharField(_("jitter"), max_length=32, blank=True, default="")
    next_tick_at = models.DateTimeField(_("next tick"), db_index=True)
    last_tick_at = models.DateTimeField(_("last tick"), null=True, blank=True)

    objects = CronScheduleQuerySet.as_manager()

    class Meta:
        verbose_name = _("cron schedule")
        verbose_name_plural = _("cron schedules")
        ordering = ("function", "cron")
        constraints = (
            models.UniqueConstraint(fields=("function", "cron"), name="inngest_cron_fn_expr"),
        )

    def __str__(self) -> str:
        return f"{self.function_id}: {self.cron}"
