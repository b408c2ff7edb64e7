"""Conditions on the feedback loop, compiled to SQL: emails received, opened and clicked, and
survey answers.

Each becomes `customers.id IN (...)` over the deliveries, events or survey responses before
now, or `NOT IN (...)` of the customers failing the count when the bounds admit 0 (so that
customers without any row are counted as 0). Every predicate is two-valued.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal, not_, or_, select

from engine.schema import customers, deliveries, events, runs, survey_responses
from engine.segments import tree as t
from engine.segments.sqlfunctions import exact, folded, json_integer, json_text, like_pattern

EVENT_KINDS = {"opened": "open", "clicked": "click"}
_ONCE = t.Bounds(at_least=Decimal(1))


def engagement(condition: t.Engagement, now: datetime) -> ColumnElement[bool]:
    """Customers with a number of sent, opened or clicked emails within the bounds.

    `received` counts deliveries sent (by `sent_at`); `opened` and `clicked` count the
    distinct emails (deliveries) with such an event (by the event's time).
    """
    if condition.event == "received":
        who, when, campaign = deliveries.c.customer_id, deliveries.c.sent_at, runs.c.campaign
        count = func.count()
        query = (select(who).select_from(deliveries.join(runs, runs.c.id == deliveries.c.run_id))
                 .where(deliveries.c.state == "sent"))
    else:
        who, when, campaign = events.c.customer_id, events.c.created_at, events.c.campaign
        count = func.count(distinct(events.c.delivery_id))
        query = select(who).where(events.c.kind == EVENT_KINDS[condition.event],
                                  who.is_not(None), events.c.delivery_id.is_not(None))
        if condition.url is not None:
            link = events.c.detail["url"]
            url = folded(case((json_text(link), link.as_string())))
            query = query.where(url.like(folded(literal(like_pattern(condition.url))),
                                         escape="/"))
    query = query.where(when < now)
    if condition.within is not None:
        query = query.where(when >= condition.within.before(now))
    if condition.campaigns:
        query = query.where(exact(campaign).in_(condition.campaigns))
    bounds = condition.bounds
    if bounds == _ONCE:
        return customers.c.id.in_(query)
    held = _bounded(count, bounds)
    if bounds.admits(Decimal(0)):
        return customers.c.id.not_in(query.group_by(who).having(not_(held)))
    return customers.c.id.in_(query.group_by(who).having(held))


def survey_answer(condition: t.SurveyAnswer, now: datetime) -> ColumnElement[bool]:
    """Customers with a survey response (updated before now, within the window) whose answer
    to the question passes the test."""
    responses = survey_responses.c
    query = select(responses.customer_id).where(responses.updated_at < now,
                                                _answered(condition))
    if condition.within is not None:
        query = query.where(responses.updated_at >= condition.within.before(now))
    if condition.campaigns:
        query = query.where(exact(responses.campaign).in_(condition.campaigns))
    return customers.c.id.in_(query)


def _answered(condition: t.SurveyAnswer) -> ColumnElement[bool]:
    """The answer is a whole number within the bounds, one of the answers, or there at all.

    The CASE keeps PostgreSQL from casting a text answer to a number (an error there).
    """
    answer = survey_responses.c.answers[condition.question]
    number = case((json_integer(answer), answer.as_integer()))
    if condition.bounds is not None:
        return _bounded(number, condition.bounds)
    if not condition.answers:
        return or_(json_integer(answer), json_text(answer))
    numbers = [a for a in condition.answers if isinstance(a, int)]
    texts = [a for a in condition.answers if isinstance(a, str)]
    parts = [number.in_(numbers)] if numbers else []
    if texts:
        parts.append(exact(case((json_text(answer), answer.as_string()))).in_(texts))
    return or_(*parts)


def _bounded(value: ColumnElement, bounds: t.Bounds) -> ColumnElement[bool]:
    parts = [] if bounds.at_least is None else [value >= literal(int(bounds.at_least))]
    parts += [] if bounds.at_most is None else [value <= literal(int(bounds.at_most))]
    return and_(*parts)
