"""`campaign status`: workers alive, runs in progress with their pace, what is coming next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from engine import ledger, schedules, senders
from engine.campaigns import CampaignError, campaign_names, load_campaign
from engine.errors import EngineError
from engine.schema import deliveries
from engine.workspace import Workspace

PACE_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class RunProgress:
    run: ledger.Run
    states: dict[str, int]
    rate: float                    # messages sent per second over the last PACE_WINDOW
    waiting_until: datetime | None  # the next not-before time of messages held back

    @property
    def left(self) -> int:
        return self.states.get("queued", 0) + self.states.get("sending", 0)

    @property
    def eta(self) -> timedelta | None:
        if not self.rate or not self.left:
            return None
        return timedelta(seconds=round(self.left / self.rate))


@dataclass(frozen=True)
class Upcoming:
    campaign: str
    when: datetime | None          # UTC; None for triggered campaigns (whenever due)
    what: str


@dataclass(frozen=True)
class Status:
    workers: list
    runs: list[RunProgress]
    upcoming: list[Upcoming]
    problems: list[str]


def status(workspace: Workspace, engine: Engine, now: datetime) -> Status:
    """Everything `campaign status` shows, as of `now`."""
    with engine.connect() as connection:
        progress = []
        for run in ledger.active_runs(connection):
            sent = connection.execute(
                select(func.count()).where(deliveries.c.run_id == run.id,
                                           deliveries.c.state == "sent",
                                           deliveries.c.sent_at >= now - PACE_WINDOW)).scalar()
            held = connection.execute(
                select(func.min(deliveries.c.not_before))
                .where(deliveries.c.run_id == run.id, deliveries.c.state == "queued",
                       deliveries.c.not_before > now)).scalar()
            progress.append(RunProgress(run, ledger.counts(connection, run.id),
                                        sent / PACE_WINDOW.total_seconds(), held))
        upcoming = [Upcoming(s.campaign, s.due_at, f"schedule {s.id}"
                             + (f", {s.local_time} local time" if s.local_time else ""))
                    for s in schedules.one_off(connection)]
        upcoming += [Upcoming(s.campaign, s.due_at, f"recurring: {s.cron} ({s.timezone})")
                     for s in schedules.recurring(connection).values()]
    problems = []
    for name in campaign_names(workspace):
        try:
            campaign = load_campaign(workspace, name)
        except CampaignError as exc:
            problems += [f"campaign '{name}': {problem}" for problem in exc.problems]
            continue
        except EngineError as exc:
            problems.append(f"campaign '{name}': {exc}")
            continue
        if campaign.trigger is not None:
            trigger = campaign.trigger
            event = ("on birthday" if trigger.event == "birthday"
                     else f"{trigger.wait or 'right'} after {trigger.event.replace('_', ' ')}")
            upcoming.append(Upcoming(name, None, f"triggered {event}"))
    upcoming.sort(key=lambda item: (item.when is None, item.when or now, item.campaign))
    return Status(senders.alive(engine, now), progress, upcoming, problems)
