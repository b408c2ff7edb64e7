"""`campaign init`: a new workspace with commented starting files, never overwriting any."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SETTINGS = '''\
# Settings of this workspace (see docs/workspace.md). Secrets never go here: set
# CAMPAIGN_SMTP_URL, CAMPAIGN_SECRET_KEY and CAMPAIGN_DKIM_KEY in the environment.

# Relative SQLite paths are relative to this folder; CAMPAIGN_DATABASE_URL overrides it.
database_url = "sqlite:///campaign.db"

[shop]
name = "{name}"
postal_address = ""          # required before a real send: your shop's postal address
base_url = "https://shop.example"
currency = "EUR"

[sender]
from = "{name} <news@shop.example>"

[sending]
rate = 50                    # messages per second, whole pool
connections = 4

# Loyalty tiers, highest first (usable in segments as `tier: gold`).
[[tiers]]
name = "gold"
spent = 1000
within = "365 days"

[[tiers]]
name = "silver"
spent = 300
within = "365 days"
'''

SEGMENTS = '''\
# Who receives what. The language is described in docs/segments.md.
segments:
  new_customers:
    description: First order in the last 30 days
    first_order: {after: 30 days ago}
  regulars:
    description: Three orders or more in the last year
    orders: {at_least: 3, within: 1 year}
  lapsed:
    description: Ordered before, nothing for 90 days
    last_order: {before: 90 days ago}
'''

FILES = {"campaign.toml": SETTINGS, "segments.yaml": SEGMENTS}
FOLDERS = ("campaigns", "templates")


@dataclass
class Scaffold:
    """What `init` created and what it left alone because it existed."""

    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def create_workspace(folder: Path, shop_name: str) -> Scaffold:
    """Write the starting files into `folder` (created if needed); existing files stay."""
    result = Scaffold()
    folder.mkdir(parents=True, exist_ok=True)
    for name in FOLDERS:
        path = folder / name
        (result.kept if path.exists() else result.created).append(path)
        path.mkdir(exist_ok=True)
    for name, template in FILES.items():
        path = folder / name
        if path.exists():
            result.kept.append(path)
            continue
        path.write_text(template.replace("{name}", shop_name.replace('"', "'")),
                        encoding="utf-8")
        result.created.append(path)
    return result
