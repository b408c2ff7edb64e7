"""The `campaign` command line: parse, call one engine function, format the answer."""

from __future__ import annotations

import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

import click
from sqlalchemy import Engine

from engine import bootstrap, db, sampledata, scaffold
from engine.campaigns import CampaignError
from engine.checks import SAMPLE_RECIPIENTS, check_workspace
from engine.emails import CampaignEmails
from engine.errors import EngineError, ImportFileError
from engine.importer import KINDS, import_file
from engine.segments.export import FORMATS, write_members
from engine.segments.members import Segments
from engine.segments.parser import SegmentError
from engine.timespec import parse_now
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
        except (SegmentError, CampaignError) as exc:
            _list_problems(exc.problems if len(exc.problems) > 1 else [])
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

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _notify(message: str) -> None:
    click.echo(message, err=True)


def _workspace(ctx: click.Context) -> Workspace:
    return open_workspace(Path.cwd(), ctx.obj["workspace"])


def _database(workspace: Workspace) -> Engine:
    """The workspace database, closed when the command ends."""
    with ProgressBars() as bars:
        engine = bootstrap.open_database(workspace.settings, _notify, bars)
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


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shop-name", default="My Shop", show_default=True, help="The shop's name.")
def init(folder: Path, shop_name: str) -> None:
    """Create a new workspace in FOLDER (existing files are never overwritten)."""
    result = scaffold.create_workspace(folder, shop_name)
    for path in result.created:
        click.echo(f"created {path}{'/' if path.is_dir() else ''}")
    for path in result.kept:
        click.echo(f"kept    {path}{'/' if path.is_dir() else ''} (already there)")
    click.echo(f"Next: cd {folder}, then import your shop's history with "
               "'campaign import customers FILE.csv' (then products and orders).")


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
    with ProgressBars() as bars:
        report = import_file(engine, kind, file, mapping=mapping, skip_bad_rows=skip_bad_rows,
                             month_first=month_first, currency=workspace.settings.shop.currency,
                             progress=bars)
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


def _now_option(function):
    return click.option("--now", "now", metavar="TIME", callback=_parse_now,
                        help="Evaluate as of this time (a date means its midnight, UTC); "
                             "default: the current time.")(function)


def _parse_now(_ctx, _param, value: str | None) -> datetime:
    try:
        return parse_now(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _segments(ctx: click.Context, now: datetime) -> tuple[Segments, Engine]:
    workspace = _workspace(ctx)
    segments = Segments(workspace, now)
    return segments, _database(workspace)


def _echo_table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> None:
    """Columns separated by two spaces; the `right` ones aligned right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(f"{value:>{width}}" if i in right else f"{value:<{width}}"
                             for i, (value, width) in enumerate(zip(row, widths, strict=True)))
                   .rstrip())


@cli.group()
def segment() -> None:
    """Segments of customers defined in segments.yaml."""


@segment.command(name="list")
@_now_option
@click.pass_context
def segment_list(ctx: click.Context, now: datetime) -> None:
    """Every segment with its description and current size."""
    segments, engine = _segments(ctx, now)
    with engine.connect() as connection:
        rows = [(name, f"{segments.count(connection, name):,}", item.description)
                for name, item in segments.definitions.items()]
    _echo_table(("SEGMENT", "CUSTOMERS", "DESCRIPTION"), rows, right={1})


@segment.command(name="count")
@click.argument("name")
@_now_option
@click.pass_context
def segment_count(ctx: click.Context, name: str, now: datetime) -> None:
    """How many customers are in segment NAME."""
    segments, engine = _segments(ctx, now)
    with engine.connect() as connection:
        click.echo(segments.count(connection, name))


@segment.command(name="show")
@click.argument("name")
@click.option("--sql", is_flag=True, help="Print the SQL query instead of the members.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0),
              help="Show at most this many members (0: all).")
@_now_option
@click.pass_context
def segment_show(ctx: click.Context, name: str, sql: bool, limit: int, now: datetime) -> None:
    """Members of segment NAME with orders, spend, last order and tier."""
    segments, engine = _segments(ctx, now)
    if sql:
        click.echo(segments.sql(engine, name))
        return
    with engine.connect() as connection:
        total = segments.count(connection, name)
        members = list(segments.members(connection, name, limit or None))
    header = ("CUSTOMER", "EMAIL", "NAME", "ORDERS", "SPENT", "LAST ORDER", "TIER")
    rows = [(m.customer_id, m.email, f"{m.first_name} {m.last_name}".strip(), str(m.orders),
             f"{m.spent:,.2f}", m.last_order_at.date().isoformat() if m.last_order_at else "-",
             m.tier or "-") for m in members]
    _echo_table(header, rows, right={3, 4})
    shown = f"{len(rows):,} of {total:,}" if len(rows) < total else f"all {total:,}"
    click.echo(f"({shown} customers in {name} as of {now.isoformat(sep=' ')} UTC)")


@segment.command(name="export")
@click.argument("name")
@click.option("--format", "file_format", type=click.Choice(FORMATS), default="csv",
              show_default=True, help="Output format.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@_now_option
@click.pass_context
def segment_export(ctx: click.Context, name: str, file_format: str, output: Path | None,
                   now: datetime) -> None:
    """Export the members of segment NAME (customer_id, email, names, figures)."""
    segments, engine = _segments(ctx, now)
    with engine.connect() as connection:
        members = segments.members(connection, name)
        if output is None:
            write_members(members, sys.stdout, file_format)
            return
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = write_members(members, handle, file_format)
    click.echo(f"Wrote {count:,} customers of {name} to {output}.", err=True)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _preview_key_warning(emails: CampaignEmails) -> None:
    if emails.signer.preview_only:
        click.echo("Note: CAMPAIGN_SECRET_KEY is not set, so links and coupon codes here are "
                   "signed with the public preview key (a real send needs the variable).",
                   err=True)


@cli.command()
@click.argument("name")
@click.option("--customer", "who", metavar="EMAIL|ID",
              help="The recipient: email address or shop customer id (default: the first "
                   "customer of the audience).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the HTML to this file instead of standard output.")
@click.option("--text", "as_text", is_flag=True, help="Show the text version instead of HTML.")
@click.option("--open", "open_browser", is_flag=True, help="Open the email in a web browser.")
@click.option("--serve", is_flag=True,
              help="Serve a live preview page of sample recipients on 127.0.0.1.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the --serve page.")
@_now_option
@click.pass_context
def preview(ctx: click.Context, name: str, who: str | None, out: Path | None, as_text: bool,
            open_browser: bool, serve: bool, port: int, now: datetime) -> None:
    """Render campaign NAME for one customer, or serve a live preview page (--serve)."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    if serve:
        from engine.preview_server import serve_preview
        serve_preview(workspace, engine, name, now, port, _notify)
        return
    with engine.connect() as connection:
        emails = CampaignEmails(workspace, connection, name, now)
        _preview_key_warning(emails)
        if who is None:
            first = emails.audience(limit=1)
            if not first:
                raise click.ClickException(f"the audience of campaign '{name}' is empty; "
                                           "pass --customer EMAIL|ID to preview anyway")
            customer_id = first[0]
        else:
            customer_id = emails.find_customer(who)
        rendered = next(emails.render([customer_id]))
    customer, email = rendered.customer, rendered.email
    click.echo(f"To: {customer.name} <{customer.email}> (customer {customer.customer_id})",
               err=True)
    click.echo(f"Subject: {email.subject}", err=True)
    body = email.text if as_text else email.html
    if open_browser and out is None:
        out = Path(tempfile.mkdtemp(prefix="campaign-preview-")) / f"{name}.html"
    if out is None:
        click.echo(body)
        return
    out.write_text(body, encoding="utf-8")
    click.echo(f"Wrote {out} ({len(body.encode('utf-8')) / 1024:.1f} KB).", err=True)
    if open_browser:
        click.launch(str(out))


@cli.command()
@click.argument("name", required=False)
@click.option("--all-recipients", is_flag=True,
              help="Render every recipient of the audience, not a sample of "
                   f"{SAMPLE_RECIPIENTS}.")
@_now_option
@click.pass_context
def check(ctx: click.Context, name: str | None, all_recipients: bool, now: datetime) -> None:
    """Validate campaign NAME (default: all) with its segment and template, rendering strictly."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    with engine.connect() as connection, ProgressBars() as bars:
        report = check_workspace(workspace, connection, [name] if name else [], now,
                                 all_recipients=all_recipients, progress=bars)
    for problem in report.problems:
        click.echo(str(problem), err=True)
    summary = (f"Checked {_count(report.campaigns, 'campaign')} and "
               f"{_count(report.recipients, 'email')}: "
               f"{_count(len(report.errors), 'error') if report.errors else 'no errors'}, "
               f"{_count(len(report.warnings), 'warning')}.")
    if report.errors:
        raise click.ClickException(summary)
    click.echo(summary)
