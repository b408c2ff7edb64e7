"""Workspace discovery and campaign.toml validation."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from engine.errors import SettingsError, WorkspaceError
from engine.settings import QuietHours, load_settings
from engine.workspace import open_workspace


def write_settings(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(text, encoding="utf-8")
    return folder


def test_workspace_is_found_upward_from_a_subfolder(tmp_path):
    root = write_settings(tmp_path / "shop", '[shop]\nname = "Green Shop"\n')
    deep = root / "templates" / "partials"
    deep.mkdir(parents=True)
    workspace = open_workspace(deep, environ={})
    assert workspace.root == root.resolve()
    assert workspace.settings.shop.name == "Green Shop"
    assert workspace.segments_file == root.resolve() / "segments.yaml"


def test_explicit_workspace_wins_and_must_hold_settings(tmp_path):
    write_settings(tmp_path / "a", '[shop]\nname = "A"\n')
    other = write_settings(tmp_path / "b", '[shop]\nname = "B"\n')
    assert open_workspace(tmp_path / "a", other, environ={}).settings.shop.name == "B"
    with pytest.raises(WorkspaceError) as error:
        open_workspace(tmp_path, tmp_path / "missing", environ={})
    assert str(error.value) == (f"{tmp_path / 'missing'}: no campaign.toml in this folder; create "
                                "one with 'campaign init DIR' or point --workspace at a folder "
                                "that has one")


def test_no_workspace_anywhere_is_explained(tmp_path):
    with pytest.raises(WorkspaceError, match="no campaign.toml here or in any parent folder; run "
                                             "this inside a workspace, pass --workspace DIR"):
        open_workspace(tmp_path, environ={})


def test_defaults_and_relative_sqlite_path(tmp_path):
    settings = load_settings(write_settings(tmp_path, ""), environ={})
    assert settings.database_url.render_as_string() == f"sqlite:///{tmp_path / 'campaign.db'}"
    assert (settings.sending.rate, settings.sending.connections) == (50.0, 4)
    assert settings.shop.currency == "EUR"
    assert settings.sample_data is None


def test_environment_overrides_and_secrets(tmp_path):
    root = write_settings(tmp_path, 'database_url = "sqlite:///x.db"\n')
    settings = load_settings(root, environ={
        "CAMPAIGN_DATABASE_URL": "postgresql://app:s3cret@db.example/shop",
        "CAMPAIGN_SMTP_URL": "smtp://user:pw@mail.example:587",
        "CAMPAIGN_SECRET_KEY": "k" * 32})
    assert settings.database_url.drivername == "postgresql+psycopg"
    assert settings.database_url.password == "s3cret"
    assert settings.smtp_url == "smtp://user:pw@mail.example:587"
    assert "s3cret" not in repr(settings) and "pw@" not in repr(settings)
    assert "k" * 32 not in repr(settings)
    mariadb = load_settings(root, environ={"CAMPAIGN_DATABASE_URL": "mariadb://root@h/db"})
    assert mariadb.database_url.drivername == "mariadb+pymysql"


@pytest.mark.parametrize(("text", "message"), [
    ('database_url = "sqlite:///x.db"\n[shop]\nname = "A"\nbase_ur = "https://a.example"\n',
     "campaign.toml:4: unknown setting 'base_ur' in [shop]; did you mean 'base_url'?"),
    ('[shopp]\nname = "A"\n',
     "campaign.toml:1: unknown setting 'shopp' in the top level; did you mean 'shop'?"),
    ('[sending]\nrate = 50\nconnections = 0\n',
     "campaign.toml:3: 'connections' must be a whole number above 0, not 0; for example "
     "connections = 4"),
    ('[sending]\nrate = "fast"\n',
     "campaign.toml:2: 'rate' must be a number above 0, not 'fast'; for example rate = 50.0"),
    ('[shop]\nbase_url = "greenshop.example"\n',
     "campaign.toml:2: base_url 'greenshop.example' is not an http(s) URL; write it as "
     'base_url = "https://shop.example"'),
    ('[sender]\nfrom = "Green Shop"\n',
     "campaign.toml:2: 'from' 'Green Shop' holds no email address; write it as "
     'from = "Shop Name <news@shop.example>"'),
    ('[shop]\nname = Green Shop\n',
     "campaign.toml:2:8: not valid TOML: Invalid value; fix the syntax (strings need quotes, "
     "tables are [name])"),
    ('smtp_url = "smtp://u:p@h"\n',
     "campaign.toml:1: 'smtp_url' is a secret and cannot live in the top level; set it in the "
     "environment instead (see CAMPAIGN_* variables)"),
    ('[shop]\ncurrency = "euro"\n',
     "campaign.toml:2: currency 'euro' is not an ISO 4217 code; write it as currency = \"EUR\""),
    ('[shop]\nname = "A"\ntimezone = "Europe/Berln"\n',
     "campaign.toml:3: timezone 'Europe/Berln' is not an IANA time zone (did you mean "
     "'Europe/Berlin'?); write it as timezone = \"Europe/Berlin\" (see the IANA tz database)"),
    ('[shop]\ntimezone = "Mars/Olympus_Mons"\n',
     "campaign.toml:2: timezone 'Mars/Olympus_Mons' is not an IANA time zone; write it as "
     "timezone = \"Europe/Berlin\" (see the IANA tz database)"),
    ('[sending]\nquiet_hours = "21-8"\n',
     "campaign.toml:2: 'quiet_hours' '21-8' is not 'HH:MM-HH:MM'; write it as quiet_hours = "
     "\"21:00-08:00\" (no email from 21:00 until 08:00 in each customer's time zone)"),
    ('[sending]\nrate = 5\nquiet_hours = "21:00-24:00"\n',
     "campaign.toml:3: 'quiet_hours' '21:00-24:00' is not 'HH:MM-HH:MM'; write it as "
     "quiet_hours = \"21:00-08:00\" (no email from 21:00 until 08:00 in each customer's time "
     "zone)"),
    ('[sending]\nquiet_hours = "08:00-8:00"\n',
     "campaign.toml:2: 'quiet_hours' '08:00-8:00' starts and ends at the same time; give a real "
     "period such as \"21:00-08:00\", or remove the line to allow email at any hour"),
    ('[sending]\nquiet_hour = "21:00-08:00"\n',
     "campaign.toml:2: unknown setting 'quiet_hour' in [sending]; did you mean 'quiet_hours'?"),
])
def test_bad_settings_name_file_and_line(tmp_path, text, message):
    root = write_settings(tmp_path, text)
    with pytest.raises(SettingsError) as error:
        load_settings(root, environ={})
    assert str(error.value) == f"{root}/{message}"


def test_bad_settings_reach_the_user_without_traceback(sqlite_workspace):
    (sqlite_workspace.root / "campaign.toml").write_text("[sending]\nrate = -1\n")
    result = sqlite_workspace.run("db", "status")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {sqlite_workspace.root}/campaign.toml:2: 'rate' must be a "
                             "number above 0, not -1; for example rate = 50.0\n")


def test_tiers_are_read_in_order_and_a_bad_one_is_located(tmp_path):
    good = ('[[tiers]]\nname = "gold"\nspent = 1000\nwithin = "365 days"\n\n'
            '[[tiers]]\nname = "silver"\norders = 3\n')
    settings = load_settings(write_settings(tmp_path / "good", good), environ={})
    assert [(t.name, t.spent, t.orders, str(t.within) if t.within else None)
            for t in settings.tiers] == [("gold", 1000, None, "365 days"),
                                        ("silver", None, 3, None)]
    root = write_settings(tmp_path / "bad", good + '\n[[tiers]]\nname = "bronze"\n')
    with pytest.raises(SettingsError) as error:
        load_settings(root, environ={})
    assert str(error.value) == (f"{root}/campaign.toml:10: tier 'bronze' needs 'spent' or "
                                "'orders'; for example [[tiers]] name = \"gold\" spent = 1000 "
                                "within = \"365 days\"")


def test_shop_timezone_and_quiet_hours(tmp_path):
    defaults = load_settings(write_settings(tmp_path / "a", ""), environ={})
    assert (defaults.shop.timezone, defaults.sending.quiet_hours) == ("UTC", None)
    settings = load_settings(write_settings(tmp_path / "b", (
        '[shop]\ntimezone = "America/New_York"\n[sending]\nquiet_hours = " 21:30 - 7:05 "\n')),
        environ={})
    assert settings.shop.timezone == "America/New_York"
    assert settings.sending.quiet_hours == QuietHours(time(21, 30), time(7, 5))
    assert str(settings.sending.quiet_hours) == "21:30-07:05"
