"""`campaign report NAME`: how a campaign did over all its runs.

Deliveries by state, opens and clicks (unique emails and totals), unsubscribes, survey
responses with each question's answers, and the Net Promoter Score of the question marked
`nps: true`. Rates are relative to the emails sent. Counts are aggregated in the database;
only the survey answers (one row per responding customer) are read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, distinct, func, select

from engine.campaigns import Campaign, load_campaign
from engine.errors import EngineError
from engine.ledger import STATES
from engine.schema import deliveries, events, runs, survey_responses
from engine.surveys import Question
from engine.workspace import Workspace

PROMOTERS = range(9, 11)
PASSIVES = range(7, 9)


@dataclass(frozen=True)
class Nps:
    """Net Promoter Score: % promoters (9-10) minus % detractors (0-6), -100 to 100."""

    promoters: int
    passives: int
    detractors: int

    @property
    def score(self) -> int | None:
        """Rounded half away from zero, exactly; None without answers."""
        answered = self.promoters + self.passives + self.detractors
        if not answered:
            return None
        difference = 100 * (self.promoters - self.detractors)
        magnitude = (2 * abs(difference) + answered) // (2 * answered)
        return magnitude if difference >= 0 else -magnitude


@dataclass(frozen=True)
class QuestionSummary:
    """The answers to one survey question: counts per choice or scale value (none for text)."""

    question: Question
    answered: int
    counts: dict[str | int, int]
    nps: Nps | None = None


@dataclass(frozen=True)
class Report:
    """A campaign's results over all its runs."""

    campaign: str
    runs: int
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    states: dict[str, int]
    opened: int           # emails opened at least once
    opens: int            # open events
    clicked: int          # emails with at least one click
    clicks: int           # click events
    unsubscribed: int     # customers who unsubscribed from this campaign's emails
    responses: int        # customers who answered the survey
    questions: list[QuestionSummary] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.states.get("sent", 0)

    def rate(self, count: int) -> float | None:
        """`count` as a share of the emails sent (None when none were sent)."""
        return count / self.sent if self.sent else None


def campaign_report(workspace: Workspace, connection: Connection, name: str) -> Report:
    """The report of campaign `name`; raises EngineError when it was never sent."""
    run_count = connection.execute(select(func.count()).where(runs.c.campaign == name)
                                   ).scalar_one()
    known = (workspace.campaigns_dir / f"{name}.yaml").is_file()
    campaign = load_campaign(workspace, name) if known or not run_count else None
    if not run_count:
        raise EngineError(f"campaign '{name}' has not been sent yet, so there is nothing to "
                          "report", path=campaign.path,
                          hint=f"send it with 'campaign send {name}' (see 'campaign runs')")
    ledger = (select(deliveries.c.state, func.count(), func.min(deliveries.c.sent_at),
                     func.max(deliveries.c.sent_at))
              .join(runs, runs.c.id == deliveries.c.run_id)
              .where(runs.c.campaign == name).group_by(deliveries.c.state))
    states, first, last = {}, [], []
    for state, count, earliest, latest in connection.execute(ledger):
        states[state] = count
        first += [earliest] if earliest else []
        last += [latest] if latest else []
    hits = dict(((kind, (unique, total)) for kind, unique, total in connection.execute(
        select(events.c.kind, func.count(distinct(events.c.delivery_id)), func.count())
        .where(events.c.campaign == name, events.c.kind.in_(("open", "click")))
        .group_by(events.c.kind))))
    unsubscribed = connection.execute(
        select(func.count(distinct(events.c.customer_id)))
        .where(events.c.campaign == name, events.c.kind == "unsubscribe")).scalar_one()
    answers = [row[0] for row in connection.execute(
        select(survey_responses.c.answers).where(survey_responses.c.campaign == name))]
    return Report(name, run_count, min(first, default=None), max(last, default=None),
                  {state: states.get(state, 0) for state in STATES},
                  *hits.get("open", (0, 0)), *hits.get("click", (0, 0)), unsubscribed,
                  len(answers), _questions(campaign, answers))


def _questions(campaign: Campaign | None, answers: list[dict]) -> list[QuestionSummary]:
    """Each question of the campaign's survey with its answers (none without the file)."""
    survey = campaign.survey if campaign is not None else None
    return [] if survey is None else [_summary(q, answers) for q in survey.questions]


def _summary(question: Question, answers: list[dict]) -> QuestionSummary:
    given = [a[question.key] for a in answers if question.key in a]
    if question.kind == "text":
        written = [value for value in given if isinstance(value, str) and value.strip()]
        return QuestionSummary(question, len(written), {})
    if question.kind == "choice":
        valid = [value for value in given if isinstance(value, str)]
        found = Counter(valid)
        # The choices in their order, then answers to choices since removed, by count.
        others = sorted((v for v in found if v not in question.choices),
                        key=lambda v: (-found[v], v))
        counts: dict[str | int, int] = {c: found[c] for c in (*question.choices, *others)}
        return QuestionSummary(question, len(valid), counts)
    numbers = [v for v in given if isinstance(v, int) and not isinstance(v, bool)
               and v in question.scale]
    found = Counter(numbers)
    nps = Nps(sum(found[v] for v in PROMOTERS), sum(found[v] for v in PASSIVES),
              sum(found[v] for v in range(0, 7))) if question.nps else None
    return QuestionSummary(question, len(numbers), {v: found[v] for v in question.scale}, nps)


def report_json(report: Report) -> dict:
    """The report as plain JSON values; rates are shares of the emails sent (0 to 1)."""
    def rated(number: int, **extra: int) -> dict:
        rate = report.rate(number)
        return {**extra, "rate": None if rate is None else round(rate, 4)}
    return {
        "campaign": report.campaign, "runs": report.runs,
        "first_sent_at": _iso(report.first_sent_at), "last_sent_at": _iso(report.last_sent_at),
        "deliveries": report.states,
        "opens": rated(report.opened, unique=report.opened, total=report.opens),
        "clicks": rated(report.clicked, unique=report.clicked, total=report.clicks),
        "unsubscribes": rated(report.unsubscribed, count=report.unsubscribed),
        "survey": {**rated(report.responses, responses=report.responses),
                   "questions": [_question_json(summary) for summary in report.questions]},
    }


def _question_json(summary: QuestionSummary) -> dict:
    question = summary.question
    found = {"key": question.key, "ask": question.ask, "kind": question.kind,
             "answered": summary.answered}
    if question.kind != "text":
        found["counts"] = {str(value): count for value, count in summary.counts.items()}
    if summary.nps is not None:
        nps = summary.nps
        found["nps"] = {"score": nps.score, "promoters": nps.promoters,
                        "passives": nps.passives, "detractors": nps.detractors}
    return found


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"
