"""The `campaign` command line: parse, call one engine function, format the answer."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import Engine

from engine import bootstrap, db, ledger, pipeline, sampledata, scaffold, schedules
from engine import suppress as suppressions
from engine.campaigns import CampaignError
from engine.checks import SAMPLE_RECIPIENTS, check_workspace
from engine.emails import CampaignEmails
from engine.errors import EngineError, ImportFileError
from engine.importer import KINDS, import_file
from engine.pipeline import Audience
from engine.plan import Plan, make_plan
from engine.reports import Report, campaign_report, report_json
from engine.segments.export import FORMATS, write_members
from engine.segments.members import Segments
from engine.segments.parser import SegmentError
from engine.status import status as sending_status
from engine.timespec import parse_now
from engine.worker import Worker
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
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{number:,} {noun if number == 1 else plural}"


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


@cli.command(name="send")
@click.argument("name")
@click.option("--dry-run", is_flag=True,
              help="Show the plan: audience, exclusions, every email rendered; send nothing.")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path),
              help="With --dry-run: write each planned message as an .eml file here.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--limit", type=click.IntRange(1), help="Deliver at most this many messages now.")
@click.option("--retry-failed", is_flag=True, help="Send the failed messages of the run again.")
@click.option("--resend-unknown", is_flag=True,
              help="Send again the messages whose delivery is unknown after a crash.")
@click.option("--again", is_flag=True,
              help="Start a new run although the last one finished (everyone gets it again).")
@_now_option
@click.pass_context
def send_command(ctx: click.Context, name: str, dry_run: bool, outbox: Path | None, yes: bool,
                 limit: int | None, retry_failed: bool, resend_unknown: bool, again: bool,
                 now: datetime) -> None:
    """Send campaign NAME (resuming its unfinished run), or show the plan with --dry-run."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    if outbox and not dry_run:
        raise click.UsageError("--outbox goes with --dry-run")
    if dry_run:
        with ProgressBars() as bars:
            plan = make_plan(workspace, engine, name, now, outbox=outbox, progress=bars)
        _echo_plan(plan, name, outbox)
        return

    def confirm(audience: Audience) -> bool:
        _echo_audience(audience)
        return yes or click.confirm(f"Send {audience.campaign} to "
                                    f"{_count(audience.recipients, 'recipient')}?")

    with SendProgress() as progress:
        report = pipeline.send(workspace, engine, name, confirm=confirm, limit=limit,
                               retry_failed=retry_failed, resend_unknown=resend_unknown,
                               again=again, evaluated_at=now, progress=progress)
    _echo_send_report(report, name)


def _echo_audience(audience: Audience) -> None:
    click.echo(f"Audience of {audience.campaign}: {_count(audience.recipients, 'recipient')}.")
    for reason, count in audience.excluded.items():
        click.echo(f"  left out, {reason}: {count:,}")


def _echo_plan(plan: Plan, name: str, outbox: Path | None) -> None:
    click.echo(f"Plan for {name} ({plan.campaign.segment_name or 'inline segment'}): "
               f"{plan.members:,} in the segment, {_count(plan.recipients, 'recipient')}.")
    for reason, count in plan.exclusions.as_dict().items():
        click.echo(f"  left out, {reason}: {count:,}")
    click.echo(f"Rendered {_count(plan.rendered, 'email')}"
               + (f", {plan.failed:,} failed:" if plan.failed else "."))
    for failure in plan.failures:
        click.echo(f"  {failure}", err=True)
    if plan.failed > len(plan.failures):
        click.echo(f"  ... and {plan.failed - len(plan.failures):,} more", err=True)
    if plan.sizes:
        low, median, high, largest = (round(size / 1024, 1) for size in plan.size_summary())
        click.echo(f"Message size: median {median} KB, 95% under {high} KB, "
                   f"from {low} to {largest} KB.")
        click.echo("Sample subjects:")
        for subject in plan.subjects:
            click.echo(f"  {subject}")
    if outbox:
        click.echo(f"Wrote {_count(plan.rendered, 'message')} to {outbox}/ (.eml files).")
    if plan.preview_key:
        click.echo("Note: CAMPAIGN_SECRET_KEY is not set; a real send needs it.", err=True)
    click.echo(f"This was a dry run: nothing was sent or stored. To send: campaign send {name}")
    if plan.failed:
        raise click.ClickException(f"{_count(plan.failed, 'email')} failed to render; fix "
                                   "them before sending")


def _echo_send_report(report: pipeline.SendReport, name: str) -> None:
    if report.cancelled:
        click.echo("Nothing sent.")
        return
    run = report.run
    if report.resumed:
        click.echo(f"Resumed run {run.id} of {name}.")
    if report.became_unknown:
        click.echo(f"{_count(report.became_unknown, 'message')} of an interrupted send may or "
                   "may not have been delivered: marked unknown, not sent again (see "
                   "--resend-unknown).", err=True)
    unknown = f", unknown {report.unknown:,}" if report.unknown else ""
    click.echo(f"Run {run.id}: delivered {report.delivered:,}, failed {report.failed:,}, "
               f"deferred {report.deferred:,}{unknown} now.")
    states = ", ".join(f"{state} {count:,}" for state, count in sorted(report.states.items()))
    click.echo(f"Ledger of run {run.id}: {states}.")
    if report.stopped:
        raise click.ClickException(f"{report.stopped}; fix the cause, then run "
                                   f"'campaign send {name}' to resume")
    left = sum(report.states.get(state, 0) for state in ("queued", "deferred"))
    if left:
        click.echo(f"{left:,} messages are still to send: run 'campaign send {name}' again.")
    if report.states.get("unknown"):
        click.echo(f"{_count(report.states['unknown'], 'message')} may or may not have been "
                   f"delivered (the connection failed after sending): 'campaign send {name} "
                   "--resend-unknown' sends them again.")


class SendProgress(ProgressBars):
    """Delivery progress on a terminal: sent, failed, rate and time left."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def __call__(self, sent: int, failed: int, total: int) -> None:
        super().__call__("sending", sent + failed, total)
        if self.bar is not None:
            rate = (sent + failed) / max(time.monotonic() - self.started, 0.001)
            self.bar.label = f"Sending ({sent:,} sent, {failed:,} failed, {rate:,.0f}/s)"


@cli.command(name="test-send")
@click.argument("name")
@click.option("--to", "to", required=True, metavar="ADDRESS", help="Where to send the test.")
@click.option("--as", "who", metavar="EMAIL|ID",
              help="Render as this customer (default: the first of the audience).")
@_now_option
@click.pass_context
def test_send(ctx: click.Context, name: str, to: str, who: str | None, now: datetime) -> None:
    """Send one rendered email of campaign NAME to ADDRESS (the ledger is not touched)."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    outcome = pipeline.test_send(workspace, engine, name, to, who, now)
    if outcome.status != "sent":
        raise click.ClickException(f"{to}: not delivered ({outcome.code or ''} "
                                   f"{outcome.detail})".replace("( ", "("))
    click.echo(f"Sent a test of {name} to {to}.")


@cli.command()
@click.pass_context
def runs(ctx: click.Context) -> None:
    """Every send run with its deliveries by state."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    with engine.connect() as connection:
        found = ledger.all_runs(connection)
    rows = [(str(run.id), run.campaign, run.status, run.started_at.strftime("%Y-%m-%d %H:%M"),
             *(f"{states.get(state, 0):,}" for state in ledger.STATES))
            for run, states in found]
    _echo_table(("RUN", "CAMPAIGN", "STATUS", "STARTED (UTC)",
                 *(state.upper() for state in ledger.STATES)), rows, right=set(range(4, 10)))


@cli.command()
@click.argument("name")
@click.option("--format", "output_format", type=click.Choice(("text", "json")), default="text",
              show_default=True, help="Output format.")
@click.pass_context
def report(ctx: click.Context, name: str, output_format: str) -> None:
    """Results of campaign NAME over all its runs: deliveries, opens, clicks, survey, NPS."""
    workspace = _workspace(ctx)
    engine = _database(workspace)
    with engine.connect() as connection:
        found = campaign_report(workspace, connection, name)
    if output_format == "json":
        click.echo(json.dumps(report_json(found), indent=2, ensure_ascii=False))
    else:
        _echo_report(found)


def _echo_report(found: Report) -> None:
    first, last = (f"{moment:%Y-%m-%d %H:%M}" if moment else "-"
                   for moment in (found.first_sent_at, found.last_sent_at))
    click.echo(f"{found.campaign}: {_count(found.runs, 'run')}, sent {first} to {last} UTC")
    click.echo()

    def share(count: int, whole: int | None) -> str:
        return f"{count / whole:.1%}" if whole else "-"
    pending = sum(found.states[state] for state in ("queued", "sending", "deferred"))
    rows = [("Sent", found.sent, None), ("Failed", found.states["failed"], None),
            ("Unknown", found.states["unknown"], None)]
    rows += [("Still to send", pending, None)] if pending else []
    rows += [("Opened", found.opened, found.sent), ("Clicked", found.clicked, found.sent),
             ("Unsubscribed", found.unsubscribed, found.sent),
             ("Survey answered", found.responses, found.sent)]
    _echo_table(("", "EMAILS", "OF SENT"), [(label, f"{count:,}", "" if whole is None else
                                            share(count, whole)) for label, count, whole in rows],
                right={1, 2})
    click.echo(f"({_count(found.opens, 'open')} and {_count(found.clicks, 'click')} in all, "
               "counting repeats)")
    for summary in found.questions if found.responses else []:
        question = summary.question
        click.echo()
        if question.kind == "text":
            click.echo(f"{question.ask} ({question.key}): "
                       f"{_count(summary.answered, 'written answer')}")
            continue
        click.echo(f"{question.ask} ({question.key}, {_count(summary.answered, 'answer')})")
        _echo_table(("  ANSWER", "COUNT", "SHARE"),
                    [(f"  {value}", f"{count:,}", share(count, summary.answered))
                     for value, count in summary.counts.items()], right={1, 2})
        if summary.nps is not None and summary.answered:
            nps = summary.nps
            click.echo(f"  NPS {nps.score:+d}: {_count(nps.promoters, 'promoter')} (9-10), "
                       f"{_count(nps.passives, 'passive')} (7-8), "
                       f"{_count(nps.detractors, 'detractor')} (0-6)")


@cli.group()
def suppress() -> None:
    """Addresses that never get mail (unsubscribes, bounces, complaints, by hand)."""


@suppress.command(name="add")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--note", help="Why (kept with the suppression).")
@click.pass_context
def suppress_add(ctx: click.Context, addresses: tuple[str, ...], note: str | None) -> None:
    """Suppress ADDRESSES."""
    engine = _database(_workspace(ctx))
    with engine.begin() as connection:
        added = sum(suppressions.suppress_address(connection, address, "manual", note,
                                                  _utcnow()) for address in addresses)
    click.echo(f"Suppressed {_count(added, 'address')}"
               + (f" ({len(addresses) - added:,} already were)." if added < len(addresses)
                  else "."))


@suppress.command(name="remove")
@click.argument("addresses", nargs=-1, required=True)
@click.pass_context
def suppress_remove(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Lift the suppression of ADDRESSES."""
    engine = _database(_workspace(ctx))
    with engine.begin() as connection:
        removed = sum(suppressions.unsuppress_address(connection, a) for a in addresses)
    click.echo(f"Removed {_count(removed, 'suppression')}.")


@suppress.command(name="list")
@click.pass_context
def suppress_list(ctx: click.Context) -> None:
    """Every suppressed address with reason and date."""
    engine = _database(_workspace(ctx))
    with engine.connect() as connection:
        rows = [(s.email, s.reason, s.created_at.strftime("%Y-%m-%d"), s.note or "")
                for s in suppressions.listed(connection)]
    _echo_table(("EMAIL", "REASON", "SINCE", "NOTE"), rows, right=set())


@suppress.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reason", type=click.Choice(suppressions.REASONS), default="manual",
              show_default=True, help="Reason recorded for these addresses.")
@click.pass_context
def suppress_import(ctx: click.Context, file: Path, reason: str) -> None:
    """Suppress every address in FILE (one per line, or a CSV with an 'email' column)."""
    engine = _database(_workspace(ctx))
    addresses = suppressions.read_addresses(file)
    with engine.begin() as connection:
        added = sum(suppressions.suppress_address(connection, address, reason,
                                                  f"imported from {file.name}", _utcnow())
                    for address in addresses)
    click.echo(f"Suppressed {_count(added, 'address')} from {file} "
               f"({len(addresses) - added:,} already were).")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the links of sent emails: unsubscribe, view online, tracking, preferences, surveys."""
    workspace = _workspace(ctx)
    from engine.web import serve as serve_web
    serve_web(workspace, _database(workspace), host, port, _notify)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class _ScheduleGroup(click.Group):
    """`campaign schedule NAME --at ...`, besides `schedule list` and `schedule cancel ID`."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().resolve_command(ctx, args)


@cli.group(cls=_ScheduleGroup)
def schedule() -> None:
    """Send a campaign later: `campaign schedule NAME --at TIME`; list or cancel schedules.

    A worker (`campaign worker`) starts each send when it is due; the audience is picked then,
    not when it is scheduled.
    """


@schedule.command(name="add")
@click.argument("name")
@click.option("--at", "at", required=True, metavar="TIME",
              help='When: "2026-12-01 09:00" (or the day, with --local-time).')
@click.option("--tz", "zone", metavar="ZONE",
              help="Time zone of --at (default: [shop] timezone of campaign.toml).")
@click.option("--local-time", metavar="HH:MM",
              help="Deliver at this hour in each customer's own time zone, on the day --at.")
@_now_option
@click.pass_context
def schedule_add(ctx: click.Context, name: str, at: str, zone: str | None,
                 local_time: str | None, now: datetime) -> None:
    """Send campaign NAME at a given time."""
    workspace = _workspace(ctx)
    zone = zone or workspace.settings.shop.timezone
    due_at, local = schedules.due_time(workspace, name, at, zone, local_time, now)
    with _database(workspace).begin() as connection:
        added = schedules.add(connection, name, due_at, zone, local, now)
    when = (f"{at} at {local} in each customer's time zone (from {due_at:%Y-%m-%d %H:%M} UTC)"
            if local else f"{at} {zone} ({due_at:%Y-%m-%d %H:%M} UTC)")
    click.echo(f"Scheduled {name} for {when} as schedule {added.id}.")
    click.echo("The audience is picked when the send starts. A worker must be running: "
               "campaign worker.")


@schedule.command(name="list")
@click.option("--all", "everything", is_flag=True,
              help="Also started and cancelled schedules.")
@click.pass_context
def schedule_list(ctx: click.Context, everything: bool) -> None:
    """Schedules still to start (and recurring campaigns), by time."""
    engine = _database(_workspace(ctx))
    with engine.connect() as connection:
        found = schedules.one_off(connection, everything)
        recurring = list(schedules.recurring(connection).values())
    rows = [(str(s.id), s.campaign, s.due_at.strftime("%Y-%m-%d %H:%M"),
             f"{s.local_time} local" if s.local_time else s.timezone, s.status,
             str(s.run_id or "")) for s in found]
    rows += [(str(s.id), s.campaign, s.due_at.strftime("%Y-%m-%d %H:%M"),
              f"{s.cron} ({s.timezone})", "recurring", str(s.run_id or "")) for s in recurring]
    if not rows:
        click.echo("Nothing is scheduled.")
        return
    _echo_table(("ID", "CAMPAIGN", "DUE (UTC)", "WHEN", "STATUS", "LAST RUN"), rows,
                right={0, 5})
    click.echo("Audiences are picked when each send starts, not when it was scheduled.")


@schedule.command(name="cancel")
@click.argument("schedule_id", metavar="ID", type=int)
@click.pass_context
def schedule_cancel(ctx: click.Context, schedule_id: int) -> None:
    """Cancel schedule ID before it starts."""
    with _database(_workspace(ctx)).begin() as connection:
        cancelled = schedules.cancel(connection, schedule_id)
    click.echo(f"Cancelled schedule {cancelled.id} ({cancelled.campaign}, due "
               f"{cancelled.due_at:%Y-%m-%d %H:%M} UTC).")


@cli.command()
@click.option("--once", is_flag=True, help="Do what is due now, then exit (for cron).")
@click.option("--lease", default=60, show_default=True, type=click.IntRange(5),
              help="Seconds a batch stays leased to this worker without a heartbeat.")
@click.option("--poll", default=5.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait between passes when there is nothing to do.")
@_now_option
@click.pass_context
def worker(ctx: click.Context, once: bool, lease: int, poll: float, now: datetime) -> None:
    """Run due schedules, recurring and triggered campaigns, and deliver active runs.

    SIGTERM or Ctrl+C finishes the messages in flight and exits. With --now the clock starts
    at that time and runs on.
    """
    workspace = _workspace(ctx)
    smtp = pipeline.required_settings(workspace)
    engine = _database(workspace)
    started = time.monotonic()
    given = ctx.get_parameter_source("now") is click.core.ParameterSource.COMMANDLINE
    clock = ((lambda: now + timedelta(seconds=time.monotonic() - started)) if given
             else _utcnow)
    halt = threading.Event()

    def stop(signum: int, _frame) -> None:
        if halt.is_set():
            raise KeyboardInterrupt
        halt.set()
        _notify(f"{signal.Signals(signum).name}: finishing the messages in flight, then "
                "stopping (again to abort).")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    Worker(workspace, engine, smtp, clock=clock, notify=_notify, halt=halt,
           lease=timedelta(seconds=lease)).run(once=once, poll=poll)


@cli.command(name="status")
@_now_option
@click.pass_context
def status_command(ctx: click.Context, now: datetime) -> None:
    """Workers alive, runs in progress with their pace, and the next scheduled sends."""
    workspace = _workspace(ctx)
    found = sending_status(workspace, _database(workspace), now)
    click.echo(f"Workers alive: {len(found.workers)}")
    for alive in found.workers:
        click.echo(f"  {alive.id}: since {alive.started_at:%Y-%m-%d %H:%M} UTC, "
                   f"last seen {alive.heartbeat_at:%H:%M:%S}, sent {alive.sent:,}")
    click.echo(f"Runs in progress: {len(found.runs)}")
    for progress in found.runs:
        states = ", ".join(f"{state} {progress.states[state]:,}" for state in ledger.STATES
                           if progress.states.get(state))
        pace = f"{progress.rate:.1f} messages/s" if progress.rate else "no messages sent lately"
        eta = f", about {progress.eta} left" if progress.eta else ""
        held = (f", held until {progress.waiting_until:%Y-%m-%d %H:%M} UTC"
                if progress.waiting_until else "")
        click.echo(f"  run {progress.run.id} {progress.run.campaign}: {states}; {pace}{eta}"
                   f"{held}")
    click.echo(f"Next: {len(found.upcoming)}")
    for item in found.upcoming:
        when = f"{item.when:%Y-%m-%d %H:%M} UTC" if item.when else "when due"
        click.echo(f"  {when}  {item.campaign} ({item.what})")
    for problem in found.problems:
        _notify(f"warning: {problem}")
