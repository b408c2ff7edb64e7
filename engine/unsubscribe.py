"""Recording an unsubscribe: the customer stops getting campaigns and the address is suppressed.

The same on SQLite, PostgreSQL and MariaDB, and safe when two requests for the same customer
(a mail client's one-click POST and a click on the page) or for two customers sharing an
address arrive at once: the customer row is updated first, which locks it until commit, and
a suppression inserted meanwhile by someone else is tolerated inside a SAVEPOINT.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime

from sqlalchemy import Connection, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import EngineError
from engine.schema import customers, events, suppressions

REASON = "unsubscribed"
NOTE_LENGTH = 500


class UnknownCustomerError(EngineError):
    """No customer has the id a (genuine) token names: deleted since the email was sent."""


def record_unsubscribe(connection: Connection, customer_id: int, campaign: str, now: datetime,
                       source: str) -> bool:
    """Unsubscribe customer `customer_id` from everything, citing `campaign` and `source`.

    In one transaction: customers.subscribed becomes false, the lower-cased address gets an
    "unsubscribed" suppression unless it already has one, and an "unsubscribe" event is
    recorded. True if this changed anything; False when the customer was already unsubscribed
    and suppressed (nothing is written then, not even an event). Runs in the caller's
    transaction when the connection is in one (the caller commits), else in its own.
    Raises UnknownCustomerError when there is no such customer.
    """
    owned = nullcontext() if connection.in_transaction() else connection.begin()
    with owned:
        # The UPDATE comes first: it takes the row lock (PostgreSQL, MariaDB) or SQLite's
        # write lock before anything is read, so a concurrent unsubscribe waits for ours.
        changed = connection.execute(
            update(customers)
            .where(customers.c.id == customer_id, customers.c.subscribed.is_(True))
            .values(subscribed=False)).rowcount == 1
        # Lower-cased by the database, as the audience compares addresses with suppressions.
        address = connection.execute(select(func.lower(customers.c.email))
                                     .where(customers.c.id == customer_id)).scalar_one_or_none()
        if address is None:
            raise UnknownCustomerError(f"no customer with id {customer_id}",
                                       hint="the customer was deleted after the email was sent")
        note = f"{source} via campaign {campaign}"[:NOTE_LENGTH]
        changed = _suppress(connection, address, note, now) or changed
        if changed:
            connection.execute(insert(events).values(
                customer_id=customer_id, campaign=campaign, kind="unsubscribe", created_at=now,
                detail={"source": source}))
        return changed


def _suppress(connection: Connection, address: str, note: str, now: datetime) -> bool:
    """Suppress `address` unless it already is; True if this added the suppression."""
    already = exists().where(suppressions.c.email == address)
    if connection.execute(select(already)).scalar():
        return False
    try:
        with connection.begin_nested():
            connection.execute(insert(suppressions).values(
                email=address, reason=REASON, note=note, created_at=now))
    except IntegrityError:
        # Inserted by a concurrent transaction since we looked: the address is suppressed,
        # which is all we wanted. Anything else that broke the insert is not tolerated. A
        # locking read sees that row even under MariaDB's REPEATABLE READ snapshot.
        found = connection.execute(select(suppressions.c.id)
                                   .where(suppressions.c.email == address)
                                   .with_for_update(read=True)).first()
        if found is None:
            raise
        return False
    return True
