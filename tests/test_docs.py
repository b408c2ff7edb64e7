"""Docs are tested: the README quickstart runs, every command has help, the code is ruff clean."""

from __future__ import annotations

import csv
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import cli
from tests.conftest import copy_example

REPO = Path(__file__).resolve().parent.parent


def _quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README quickstart has no ```sh block"
    return [line for line in block[1].splitlines() if line.strip()]


def test_readme_quickstart_runs_on_the_example_workspace(tmp_path, monkeypatch):
    commands = _quickstart_commands()
    assert commands[0] == 'pip install -e ".[dev]"'
    copy_example(tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"CAMPAIGN_DATABASE_URL": None, "CAMPAIGN_WORKSPACE": None,
                            "CAMPAIGN_SECRET_KEY": None})
    outputs = {}
    for command in commands[1:]:
        words = shlex.split(command)
        assert words[0] == "campaign"
        result = runner.invoke(cli, words[1:], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs[words[1]] = result
    with (REPO / "data" / "customers.csv").open(encoding="utf-8") as handle:
        expected = sum(1 for _ in csv.DictReader(handle))
    assert "Imported the sample purchase history from data/" in outputs["send"].stderr
    assert outputs["send"].stdout.startswith("Plan for spring (garden_fans): ")
    assert "This was a dry run: nothing was sent or stored." in outputs["send"].stdout
    assert "Checked 4 campaigns and 80 emails: no errors" in outputs["check"].output
    assert "Subject: Lena, spring picks for you" in outputs["preview"].stderr
    assert f"customers: {expected:,}\n" in outputs["db"].stdout


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("words", list(_all_commands(cli)), ids=" ".join)
def test_every_command_has_help(words):
    result = CliRunner().invoke(cli, [*words, "--help"])
    assert result.exit_code == 0
    summary = result.stdout.split("\n\n")[1].strip()
    assert len(summary) > 10, f"'campaign {' '.join(words)}' needs a description"


def test_code_is_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the dev extra: pip install -e '.[dev]'"
    result = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
