"""Writing segment members as CSV or JSON lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from engine.segments.members import Member

FORMATS = ("csv", "jsonl")
COLUMNS = ("customer_id", "email", "first_name", "last_name", "orders", "spent",
           "last_order_at", "tier")


def _record(member: Member) -> dict[str, object]:
    return {"customer_id": member.customer_id, "email": member.email,
            "first_name": member.first_name, "last_name": member.last_name,
            "orders": member.orders, "spent": f"{member.spent:.2f}",
            "last_order_at": member.last_order_at.isoformat() + "Z"
            if member.last_order_at else None,
            "tier": member.tier}


def write_members(members: Iterable[Member], out: TextIO, file_format: str) -> int:
    """Write every member to `out`; returns how many."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    if file_format == "csv":
        writer.writeheader()
    for member in members:
        record = _record(member)
        if file_format == "csv":
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
