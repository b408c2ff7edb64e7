"""A small example shop for send and worker tests: the example workspace on SQLite with a
ten-customer campaign, driven through the real CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from cli import cli

REPO = Path(__file__).resolve().parent.parent
NOW = ("--now", "2026-11-01")
IDS = ", ".join(f"C{number:07d}" for number in range(1, 11))
SEGMENT = f"  first_ten:\n    customer: {{customer_id: [{IDS}]}}\n"
CAMPAIGN = ("subject: \"{{ customer.first_name }}, news\"\nsegment: first_ten\n"
            "template: winback.mjml\ncoupon: {percent: 10}\n")


class Shop:
    """A copy of the example workspace on SQLite with a ten-customer campaign, `ten`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("campaign.toml", "data", "campaigns", "templates"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
        (root / "segments.yaml").write_text(
            (REPO / "segments.yaml").read_text(encoding="utf-8") + SEGMENT, encoding="utf-8")
        (root / "campaigns" / "ten.yaml").write_text(CAMPAIGN, encoding="utf-8")
        self.smtp_url = ""
        self.extra: dict[str, str] = {}

    def run(self, *args: str, input: str | None = None) -> Result:
        env = {"CAMPAIGN_WORKSPACE": str(self.root), "CAMPAIGN_DATABASE_URL": None,
               "CAMPAIGN_SECRET_KEY": "test-secret", "CAMPAIGN_SMTP_URL": self.smtp_url,
               **self.extra}
        return CliRunner(env=env).invoke(cli, list(args), input=input, catch_exceptions=False)

    def rows(self, sql: str) -> list[tuple]:
        from sqlalchemy import create_engine, text
        engine = create_engine(f"sqlite:///{self.root / 'campaign.db'}")
        try:
            with engine.begin() as connection:
                result = connection.execute(text(sql))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def addresses(self) -> list[str]:
        return [address for (address,) in self.rows(
            "SELECT email FROM customers WHERE external_id <= 'C0000010' AND subscribed "
            "ORDER BY id")]

    def write_campaign(self, name: str, extra: str) -> None:
        """campaigns/NAME.yaml: the ten-customer campaign plus `extra` YAML lines."""
        (self.root / "campaigns" / f"{name}.yaml").write_text(CAMPAIGN + extra, encoding="utf-8")

    def set_setting(self, section: str, line: str) -> None:
        """Set `line` ("key = value") in `section` ("[sending]") of campaign.toml, replacing
        the key's line when the file has one."""
        path = self.root / "campaign.toml"
        text = path.read_text(encoding="utf-8")
        assert section in text, f"campaign.toml has no {section}"
        key = line.split("=")[0].strip()
        lines = text.splitlines()
        start = lines.index(section)
        end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("[")),
                   len(lines))
        found = [n for n in range(start + 1, end) if lines[n].split("=")[0].strip() == key]
        if found:
            lines[found[0]] = line
        else:
            lines.insert(start + 1, line)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
