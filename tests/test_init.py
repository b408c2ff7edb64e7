"""`campaign init`: a working new workspace, and nothing overwritten."""

from __future__ import annotations

from click.testing import CliRunner

from cli import cli
from engine.workspace import open_workspace


def test_init_creates_a_workspace_that_works(tmp_path, monkeypatch):
    folder = tmp_path / "tea"
    runner = CliRunner(env={"CAMPAIGN_DATABASE_URL": None, "CAMPAIGN_WORKSPACE": None})
    result = runner.invoke(cli, ["init", str(folder), "--shop-name", "Tea Room"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:4] == [
        f"created {folder / 'campaigns'}/", f"created {folder / 'templates'}/",
        f"created {folder / 'campaign.toml'}", f"created {folder / 'segments.yaml'}"]
    workspace = open_workspace(folder, environ={})
    assert workspace.settings.shop.name == "Tea Room"
    assert [tier.name for tier in workspace.settings.tiers] == ["gold", "silver"]
    monkeypatch.chdir(folder)
    listed = runner.invoke(cli, ["segment", "list", "--now", "2026-11-01"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[1:] == [
        "new_customers          0  First order in the last 30 days",
        "regulars               0  Three orders or more in the last year",
        "lapsed                 0  Ordered before, nothing for 90 days"]


def test_init_never_overwrites(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "segments.yaml").write_text("segments: {}\n")
    result = CliRunner().invoke(cli, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"kept    {folder / 'segments.yaml'} (already there)" in result.stdout
    assert (folder / "segments.yaml").read_text() == "segments: {}\n"
    assert (folder / "campaign.toml").is_file()
