"""The `campaign` command line: parse, call one engine function, format the answer."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click
from sqlalchemy import Engine

from engine import bootstrap, db, sampledata
from engine.errors import EngineError, ImportFileError
from engine.importer import KINDS, import_file
from engine.workspace import Workspace, open_workspace

MAX_LISTED_PROBLEMS = 50


class EngineGroup(click.Group):
    """Turns engine errors into exit status 1 with the message on stderr, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ImportFileError as exc:
            _list_problems(exc.problems)
            raise click.ClickException(str(exc)) from exc
        except EngineError as exc:
            raise click.ClickException(str(exc)) from exc


def _list_problems(problems: list[str]) -> None:
    for problem in problems[:MAX_LISTED_PROBLEMS]:
        click.echo(problem, err=True)
    if len(problems) > MAX_LISTED_PROBLEMS:
        click.echo(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more", err=True)


class ProgressBars:
    """Draws one progress bar per step of a long engine operation (on a terminal only)."""

    def __init__(self) -> None:
        self.step: str | None = None
        self.bar = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        if step != self.step:
            self.close()
            self.step = step
            self.bar = click.progressbar(length=max(total, 1), label=step.capitalize(),
                                         file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _notify(message: str) -> None:
    click.echo(message, err=True)


def _workspace(ctx: click.Context) -> Workspace:
    return open_workspace(Path.cwd(), ctx.obj["workspace"])


def _database(workspace: Workspace) -> Engine:
    """The workspace database, closed when the command ends."""
    bars = ProgressBars()
    try:
        engine = bootstrap.open_database(workspace.settings, _notify, bars)
    finally:
        bars.close()
    click.get_current_context().call_on_close(engine.dispose)
    return engine


@click.group(cls=EngineGroup)
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path),
              envvar="CAMPAIGN_WORKSPACE",
              help="Workspace folder (default: nearest folder upward with campaign.toml).")
@click.version_option(package_name="campaign")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None) -> None:
    """Personalized newsletter campaigns from your shop's purchase history."""
    ctx.obj = {"workspace": workspace}


@cli.group(name="db")
def db_group() -> None:
    """The engine's database: schema and contents."""


@db_group.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create or migrate the database schema to this version."""
    settings = _workspace(ctx).settings
    engine = db.connect(settings.database_url)
    ctx.call_on_close(engine.dispose)
    before, after = db.upgrade(engine)
    where = db.describe(settings.database_url)
    if before == after:
        click.echo(f"{where}: schema already at revision {after}.")
    else:
        click.echo(f"{where}: schema upgraded from {before or 'empty'} to revision {after}.")


@db_group.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Where the database is, its schema revision and how much history it holds."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    click.echo(f"Database: {db.describe(workspace.settings.database_url)} "
               f"(schema {db.current_revision(engine)})")
    for table, count in bootstrap.table_counts(engine).items():
        click.echo(f"  {table.replace('_', ' ')}: {count:,}")


def _parse_mapping(_ctx, _param, values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(f"'{value}' is not field=Column (e.g. email=E-Mail)")
        mapping[field.strip()] = column.strip()
    return mapping


@cli.command(name="import")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "mapping", multiple=True, callback=_parse_mapping, metavar="FIELD=COLUMN",
              help="Read FIELD from the file's COLUMN (repeatable).")
@click.option("--skip-bad-rows", is_flag=True,
              help="Import the good rows and list every skipped line.")
@click.option("--month-first", is_flag=True, help="Read 03/04/2026 as March 4 (US style).")
@click.pass_context
def import_command(ctx: click.Context, kind: str, file: Path, mapping: dict[str, str],
                   skip_bad_rows: bool, month_first: bool) -> None:
    """Import customers, products or order lines from a CSV file (upsert by id)."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    bars = ProgressBars()
    try:
        report = import_file(engine, kind, file, mapping=mapping, skip_bad_rows=skip_bad_rows,
                             month_first=month_first, currency=workspace.settings.shop.currency,
                             progress=bars)
    finally:
        bars.close()
    _list_problems(report.skipped)
    counts = f"{report.inserted:,} new, {report.updated:,} updated"
    if kind == "orders":
        summary = (f"Imported {report.lines:,} order lines from {file}: "
                   f"{report.inserted + report.updated:,} orders ({counts}), "
                   f"{report.products_created:,} new products")
    else:
        summary = f"Imported {report.lines:,} {kind} from {file}: {counts}"
    if report.skipped:
        summary += f"; skipped {len(report.skipped):,} lines (listed above)"
    click.echo(summary + ".")
    if report.invalid_emails:
        click.echo(f"Note: {report.invalid_emails:,} customers have an email address that looks "
                   "invalid; they are kept but never mailed.", err=True)


@cli.command(name="sample-data")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--customers", default=2000, show_default=True, type=click.IntRange(1),
              help="How many customers to generate.")
@click.option("--seed", default=42, show_default=True, help="Random seed (same seed, same files).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default="2026-11-01",
              show_default=True, help="History ends before this date.")
def sample_data(folder: Path, customers: int, seed: int, until: datetime) -> None:
    """Generate a realistic sample purchase history as CSV files in FOLDER."""
    with click.progressbar(length=customers, label="Generating", file=sys.stderr) as bar:
        summary = sampledata.generate(folder, customers=customers, seed=seed,
                                      until=date(until.year, until.month, until.day),
                                      progress=bar.update)
    click.echo(f"Wrote {summary.customers:,} customers, {summary.products:,} products, "
               f"{summary.orders:,} orders ({summary.order_lines:,} order lines) to {folder}.")
