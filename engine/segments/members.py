"""Running segments: counts, members with their key figures, exports, and the SQL itself."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, Select, case, func, literal, select

from engine.errors import WorkspaceError
from engine.schema import customers, orders
from engine.segments import tree as t
from engine.segments.compiler import Scope, predicate, segment_query, tier_condition
from engine.segments.definitions import load_segments
from engine.workspace import Workspace


@dataclass(frozen=True)
class Member:
    """A customer in a segment with the figures a marketer checks first."""

    customer_id: str
    email: str
    first_name: str
    last_name: str
    orders: int
    spent: Decimal
    last_order_at: datetime | None
    tier: str | None


class Segments:
    """The workspace's segments, evaluated as of `now`."""

    def __init__(self, workspace: Workspace, now: datetime) -> None:
        path = workspace.segments_file
        if not path.is_file():
            raise WorkspaceError("no segments.yaml in this workspace", path=path,
                                 hint="create it with a 'segments:' mapping (see docs/segments.md)")
        tiers = workspace.settings.tiers
        self.path = path
        self.definitions = load_segments(path, [tier.name for tier in tiers])
        self.scope = Scope(now, self.definitions, tiers)

    def get(self, name: str) -> t.Segment:
        if name not in self.definitions:
            close = difflib.get_close_matches(name, list(self.definitions), n=1)
            hint = f"did you mean '{close[0]}'?" if close else \
                f"defined segments: {', '.join(self.definitions) or 'none'}"
            raise WorkspaceError(f"no segment named '{name}'", path=self.path, hint=hint)
        return self.definitions[name]

    def query(self, name: str) -> Select:
        return segment_query(self.get(name).condition, self.scope)

    def count(self, connection: Connection, name: str) -> int:
        return connection.execute(select(func.count()).select_from(
            self.query(name).subquery())).scalar_one()

    def sql(self, engine: Engine, name: str) -> str:
        """The compiled SELECT for this database, with its values written in."""
        compiled = self.query(name).compile(engine, compile_kwargs={"literal_binds": True})
        return f"{compiled};"

    def members(self, connection: Connection, name: str, limit: int | None = None
                ) -> Iterator[Member]:
        """Members in customer order, each with orders, spend, last order and tier."""
        totals = (select(orders.c.customer_id, func.count(orders.c.id).label("orders"),
                         func.sum(orders.c.total).label("spent"),
                         func.max(orders.c.placed_at).label("last_order_at"))
                  .where(orders.c.placed_at < self.scope.now)
                  .group_by(orders.c.customer_id).subquery())
        statement = (select(customers.c.external_id, customers.c.email, customers.c.first_name,
                            customers.c.last_name, func.coalesce(totals.c.orders, 0),
                            func.coalesce(totals.c.spent, 0), totals.c.last_order_at,
                            self._tier_column())
                     .select_from(customers.outerjoin(totals,
                                                      totals.c.customer_id == customers.c.id))
                     .where(customers.c.id.in_(self.query(name)))
                     .order_by(customers.c.id).limit(limit))
        for row in connection.execute(statement):
            yield Member(row[0], row[1], row[2], row[3], int(row[4]),
                         Decimal(str(row[5])).quantize(Decimal("0.01")), row[6], row[7])

    def _tier_column(self):
        tiers = self.scope.tiers
        if not tiers:
            return literal(None).label("tier")
        return case(*((predicate(tier_condition(tiers, tier.name), self.scope), tier.name)
                      for tier in tiers), else_=None).label("tier")
