"""`campaign check`: every campaign file, template and sample email, validated strictly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta
from sqlalchemy import Connection

from engine.campaigns import CampaignError, campaign_names
from engine.emails import CampaignEmails
from engine.errors import EngineError
from engine.lint import Problem, check_html, check_mjml_source
from engine.render import RenderError, make_environment
from engine.segments.definitions import load_segments
from engine.segments.parser import SegmentError
from engine.workspace import Workspace

SAMPLE_RECIPIENTS = 20
MAX_FAILURES_LISTED = 5
Progress = Callable[[str, int, int], None]


@dataclass
class CheckReport:
    """What `campaign check` found."""

    problems: list[Problem] = field(default_factory=list)
    campaigns: int = 0
    recipients: int = 0
    templates: set[Path] = field(default_factory=set)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def check_workspace(workspace: Workspace, connection: Connection, names: list[str],
                    now: datetime, *, all_recipients: bool = False,
                    progress: Progress | None = None) -> CheckReport:
    """Check the named campaigns (all when empty) and the segments they use."""
    report = CheckReport()
    try:
        if workspace.segments_file.is_file():
            load_segments(workspace.segments_file, [t.name for t in workspace.settings.tiers])
    except SegmentError as exc:
        report.problems += [_located(problem) for problem in exc.problems]
        return report
    if not workspace.settings.secret_key:
        report.problems.append(Problem(
            "warning", "CAMPAIGN_SECRET_KEY is not set: links and coupon codes are signed with "
            "the public preview key", hint="set it in the environment before a real send"))
    if not workspace.settings.shop.postal_address.strip():
        report.problems.append(Problem(
            "error", "no postal address for the shop (required in every email)",
            path=str(workspace.root / "campaign.toml"),
            hint="add postal_address = \"...\" under [shop]"))
    for name in names or campaign_names(workspace):
        report.campaigns += 1
        _check_campaign(workspace, connection, name, now, all_recipients, progress, report)
    if not names:
        report.problems += _check_other_templates(workspace, report.templates)
    return report


def _check_other_templates(workspace: Workspace, checked: set[Path]) -> list[Problem]:
    """Templates no campaign uses (yet): MJML element names and Jinja syntax."""
    problems = []
    environment = make_environment(workspace.templates_dir, html=True)
    for path in sorted(workspace.templates_dir.rglob("*.mjml")):
        if path in checked:
            continue
        source = path.read_text(encoding="utf-8")
        problems += check_mjml_source(source, str(path))
        try:
            environment.parse(source)
        except TemplateSyntaxError as exc:
            problems.append(Problem("error", f"template syntax error: {exc.message}",
                                    path=str(path), line=exc.lineno))
    return problems


def _check_campaign(workspace: Workspace, connection: Connection, name: str, now: datetime,
                    all_recipients: bool, progress: Progress | None,
                    report: CheckReport) -> None:
    try:
        emails = CampaignEmails(workspace, connection, name, now)
    except CampaignError as exc:
        report.problems += [_located(problem) for problem in exc.problems]
        return
    except EngineError as exc:
        report.problems.append(_problem(exc))
        return
    template_path = workspace.templates_dir / emails.campaign.template
    for path in _template_files(workspace.templates_dir, emails.campaign.template):
        if path not in report.templates:
            report.templates.add(path)
            report.problems += check_mjml_source(path.read_text(encoding="utf-8"), str(path))
    ids = emails.audience(None if all_recipients else SAMPLE_RECIPIENTS)
    if not ids:
        report.problems.append(Problem(
            "warning", f"the audience of campaign '{name}' is empty today",
            path=str(emails.campaign.path), hint="check the segment with 'campaign segment "
            f"count {emails.campaign.segment_name or 'NAME'}'"))
    failures: Counter[str] = Counter()
    seen: dict[str, Problem] = {}
    done = 0
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        for context in emails.builder.build(batch):
            done += 1
            try:
                email = emails.renderer.render(context)
            except RenderError as exc:
                key = f"{exc.path}:{exc.line}: {exc.reason}"
                failures[key] += 1
                if failures[key] == 1 and len(failures) <= MAX_FAILURES_LISTED:
                    report.problems.append(_problem(exc))
                continue
            for problem in check_html(email.html, unsubscribe_url=context["links"].unsubscribe,
                                      postal_address=context["shop"].postal_address,
                                      path=str(template_path)):
                seen.setdefault(problem.message, problem)
        if progress:
            progress(f"checking {name}", done, len(ids))
    report.recipients += done
    report.problems += seen.values()
    repeated = sum(count - 1 for count in failures.values())
    if repeated:
        report.problems.append(Problem(
            "warning", f"the rendering failures above hit {repeated} more of the "
            f"{done} emails checked in campaign '{name}'", path=str(template_path)))
    if len(failures) > MAX_FAILURES_LISTED:
        report.problems.append(Problem(
            "error", f"{len(failures) - MAX_FAILURES_LISTED} more distinct rendering failures "
            f"in campaign '{name}'", path=str(template_path)))


def _template_files(folder: Path, name: str) -> list[Path]:
    """The template and every template it includes, imports or extends."""
    environment = Environment()
    found: list[Path] = []
    pending = [name]
    while pending:
        path = folder / pending.pop()
        if path in found or not path.is_file():
            continue
        found.append(path)
        try:
            referenced = meta.find_referenced_templates(
                environment.parse(path.read_text(encoding="utf-8")))
        except TemplateSyntaxError:  # reported when the campaign's template compiles
            continue
        pending += [ref for ref in referenced if ref]
    return found


def _located(problem: str) -> Problem:
    """A Problem from a `path:line:column: message` text."""
    where, _, message = problem.partition(": ")
    return Problem("error", message, path=where) if message else Problem("error", problem)


def _problem(exc: EngineError) -> Problem:
    return Problem("error", exc.message, path=exc.path, line=exc.line, hint=exc.hint)
