"""`campaign worker`: start what is due (one-off schedules, recurring occurrences, lifecycle
triggers), then deliver the queued messages of every run in progress; again and again.

Several workers can share one PostgreSQL or MariaDB database: deliveries are leased in batches
(engine.ledger), and starting runs is done by one worker at a time under a database lock, so each
occurrence starts once. On SQLite one worker (or `campaign send`) runs at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, Engine, Integer, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from engine import ledger, pipeline, schedules, senders
from engine.campaigns import Campaign, CampaignError, campaign_names, load_campaign
from engine.errors import EngineError
from engine.scheduler import (
    customer_zone,
    due_occurrence,
    local_moment,
    next_tick,
    quiet_release,
)
from engine.schema import deliveries, triggered
from engine.transport import SmtpSettings
from engine.triggers import due_events
from engine.workspace import Workspace

POLL = 5.0                     # seconds between passes when there is nothing to do
LOCK_NAME = "campaign-scheduler"
LOCK_KEY = 0x63616D70          # PostgreSQL advisory lock key ("camp")

Clock = Callable[[], datetime]
Notify = Callable[[str], None]


class _TakenError(Exception):
    """Another worker got there first; roll back."""


@dataclass
class PassReport:
    """What one pass of the worker did."""

    started: list[str] = field(default_factory=list)       # "spring run 4 (schedule 2)"
    delivered: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.started or self.delivered or self.failed)


class Worker:
    """One worker process: its sender identity, its clock and what stops it."""

    def __init__(self, workspace: Workspace, engine: Engine, smtp: SmtpSettings, *,
                 clock: Clock, notify: Notify, halt: threading.Event,
                 lease: timedelta = senders.LEASE) -> None:
        self.workspace = workspace
        self.engine = engine
        self.smtp = smtp
        self.clock = clock
        self.notify = notify
        self.halt = halt
        self.lease = lease
        self._warned: set[str] = set()   # problems already reported: once each, not per pass

    def run(self, once: bool = False, poll: float = POLL) -> int:
        """Work until halted (or, with `once`, until nothing is left to do now); messages sent."""
        sender = senders.register(self.engine, self.clock(), self.lease)
        self.notify(f"Worker {sender.id} started.")
        try:
            while not self.halt.is_set():
                report = self.one_pass(sender)
                for problem in report.problems:
                    if problem not in self._warned:
                        self._warned.add(problem)
                        self.notify(f"warning: {problem}")
                if once and not report.busy:
                    break
                if not report.busy:
                    senders.heartbeat(self.engine, sender, self.clock())
                    self.halt.wait(poll)
        finally:
            senders.sign_off(self.engine, sender, self.clock())
        self.notify(f"Worker {sender.id} stopped; it sent {sender.sent:,} messages.")
        return sender.sent

    def one_pass(self, sender: senders.Sender) -> PassReport:
        """Start due runs, then deliver every active run's due messages once."""
        report = PassReport()
        senders.heartbeat(self.engine, sender, self.clock())
        with self.engine.begin() as connection:
            ledger.expire(connection, self.clock(), alone=sender.alone)
        self._start_due(report)
        with self.engine.connect() as connection:
            active = ledger.active_runs(connection)
        for run in active:
            if self.halt.is_set():
                break
            self._deliver(sender, run, report)
        return report

    # -- starting runs ------------------------------------------------------------------------
    def _start_due(self, report: PassReport) -> None:
        with self.engine.connect() as lock:
            if not _try_lock(lock):
                return   # another worker is starting runs right now
            try:
                campaigns = self._campaigns(report)
                self._forget_recurring(campaigns, report)
                self._start_schedules(report)
                for campaign in campaigns:
                    if self.halt.is_set():
                        return
                    if campaign.recurrence is not None:
                        self._start_recurring(campaign, report)
                    elif campaign.trigger is not None:
                        self._start_triggered(campaign, report)
            finally:
                _unlock(lock)

    def _forget_recurring(self, campaigns: list[Campaign], report: PassReport) -> None:
        """Drop the recurring schedule of a campaign whose file no longer has `schedule:` or
        is gone (one that fails to load keeps it until it is fixed)."""
        names = set(campaign_names(self.workspace))
        keep = {campaign.name for campaign in campaigns if campaign.recurrence is not None}
        broken = names - {campaign.name for campaign in campaigns}
        with self.engine.begin() as connection:
            for name in set(schedules.recurring(connection)) - keep - broken:
                schedules.drop_recurring(connection, name)
                report.problems.append(f"campaign '{name}' has no 'schedule:' any more; its "
                                       "recurring sends stopped")

    def _campaigns(self, report: PassReport) -> list[Campaign]:
        found = []
        for name in campaign_names(self.workspace):
            try:
                found.append(load_campaign(self.workspace, name))
            except CampaignError as exc:   # each problem, located: nothing lists them above
                report.problems += [f"campaign '{name}' is skipped: {problem}"
                                    for problem in exc.problems]
            except EngineError as exc:
                report.problems.append(f"campaign '{name}' is skipped: {exc}")
        return found

    def _start_schedules(self, report: PassReport) -> None:
        now = self.clock()
        with self.engine.connect() as connection:
            due = schedules.due(connection, now)
        for schedule in due:
            try:
                with self.engine.begin() as connection, self.engine.connect() as members:
                    if not schedules.take(connection, schedule, now):
                        continue
                    run = pipeline.snapshot(self.workspace, connection, members,
                                            schedule.campaign, now, now,
                                            occurrence=f"schedule:{schedule.id}")
                    schedules.started_run(connection, schedule, run.id)
                    if schedule.local_time:
                        self._hold_local(connection, run, schedule)
                    else:
                        self._hold_quiet(connection, run, now)
                report.started.append(f"{schedule.campaign} run {run.id} "
                                      f"(schedule {schedule.id})")
            except EngineError as exc:
                report.problems.append(f"schedule {schedule.id} of '{schedule.campaign}' "
                                       f"cannot start: {exc}")

    def _start_recurring(self, campaign: Campaign, report: PassReport) -> None:
        now = self.clock()
        cron, zone = campaign.recurrence.cron, campaign.recurrence.timezone
        with self.engine.begin() as connection:
            row = schedules.recurring(connection).get(campaign.name)
            if row is None or (row.cron, row.timezone) != (cron, zone):
                schedules.set_recurring(connection, campaign.name, cron, zone,
                                        next_tick(cron, zone, now), now, row)
                return   # a new or changed schedule starts with its next occurrence
        occurrence = due_occurrence(cron, zone, row.due_at, now)
        if occurrence is None:
            return
        try:
            with self.engine.begin() as connection, self.engine.connect() as members:
                run = pipeline.snapshot(self.workspace, connection, members, campaign.name,
                                        now, now, occurrence=f"cron:{occurrence:%Y-%m-%dT%H:%M}")
                if not schedules.advance(connection, row, next_tick(cron, zone, now), now,
                                         run.id):
                    raise _TakenError
                self._hold_quiet(connection, run, now)
        except (IntegrityError, _TakenError):
            return   # another worker started this occurrence
        report.started.append(f"{campaign.name} run {run.id} "
                              f"(occurrence {occurrence:%Y-%m-%d %H:%M} UTC)")

    def _start_triggered(self, campaign: Campaign, report: PassReport) -> None:
        """A run for the customers with a due triggering event; every such event is recorded
        (with the run, or without one for a customer left out), so none is sent twice."""
        now = self.clock()
        events = due_events(campaign.trigger, campaign.name, now).subquery()
        try:
            with self.engine.begin() as connection, self.engine.connect() as members:
                if not connection.execute(select(func.count()).select_from(events)).scalar():
                    return
                run = pipeline.snapshot(self.workspace, connection, members, campaign.name,
                                        now, now, occurrence=f"trigger:{now:%Y-%m-%dT%H:%M:%S.%f}",
                                        among=select(events.c.customer_id))
                sent_to = select(deliveries.c.customer_id).where(deliveries.c.run_id == run.id)
                columns = ["campaign", "customer_id", "event_key", "run_id", "created_at"]
                for run_id, chosen in ((run.id, events.c.customer_id.in_(sent_to)),
                                       (None, events.c.customer_id.not_in(sent_to))):
                    connection.execute(insert(triggered).from_select(columns, select(
                        literal(campaign.name), events.c.customer_id, events.c.event_key,
                        literal(run_id, Integer), literal(now)).where(chosen)))
                if ledger.counts(connection, run.id):
                    self._hold_quiet(connection, run, now)
                    report.started.append(f"{campaign.name} run {run.id} (trigger)")
                else:
                    ledger.discard(connection, run)   # everyone due was left out
        except IntegrityError:
            return   # another worker recorded these events first

    # -- delivery times -----------------------------------------------------------------------
    def _zone(self, name: str | None) -> str:
        return customer_zone(name, self.workspace.settings.shop.timezone)

    def _hold_local(self, connection: Connection, run: ledger.Run,
                    schedule: schedules.Schedule) -> None:
        """Deliver at the schedule's local time in each customer's own time zone."""
        day = _local_day(schedule)
        at = time.fromisoformat(schedule.local_time)
        quiet = self.workspace.settings.sending.quiet_hours
        for zone in ledger.zones(connection, run.id):
            own = self._zone(zone)
            moment = quiet_release(local_moment(day, at, own), own, quiet)
            if moment > run.started_at:
                ledger.hold(connection, run.id, zone, moment)

    def _hold_quiet(self, connection: Connection, run: ledger.Run, now: datetime) -> None:
        """Defer messages that would arrive in a customer's quiet hours to their end."""
        quiet = self.workspace.settings.sending.quiet_hours
        if quiet is None:
            return
        for zone in ledger.zones(connection, run.id):
            moment = quiet_release(now, self._zone(zone), quiet)
            if moment > now:
                ledger.hold(connection, run.id, zone, moment)

    # -- delivering -----------------------------------------------------------------------------
    def _deliver(self, sender: senders.Sender, run: ledger.Run, report: PassReport) -> None:
        result = pipeline.SendReport(run=run)
        try:
            pipeline.deliver(self.workspace, self.engine, run, self.smtp, sender, result,
                             halt=self.halt, now=self.clock)
        except EngineError as exc:
            report.problems.append(f"run {run.id} of '{run.campaign}': {exc}")
            return
        report.delivered += result.delivered
        report.failed += result.failed
        with self.engine.begin() as connection:
            pipeline.conclude(connection, run, result.stopped, self.clock())
        if result.delivered or result.failed:
            self.notify(f"{run.campaign} run {run.id}: delivered {result.delivered:,}, "
                        f"failed {result.failed:,}" + (f"; {result.stopped}"
                                                       if result.stopped else ""))


def _local_day(schedule: schedules.Schedule) -> date:
    """The calendar day a local-time schedule delivers on: its due time is the moment its local
    time comes first anywhere, in UTC+14."""
    return (schedule.due_at + timedelta(hours=14)).date()


def _try_lock(connection: Connection) -> bool:
    """Take the database-wide lock for starting runs, without waiting (SQLite: one worker)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return bool(connection.execute(select(func.pg_try_advisory_lock(LOCK_KEY))).scalar())
    if dialect in ("mysql", "mariadb"):
        return connection.execute(select(func.get_lock(LOCK_NAME, 0))).scalar() == 1
    return True


def _unlock(connection: Connection) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
    elif dialect in ("mysql", "mariadb"):
        connection.execute(select(func.release_lock(LOCK_NAME)))
    connection.commit()
