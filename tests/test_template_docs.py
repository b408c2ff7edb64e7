"""docs/templates.md and docs/campaigns.md are tested: their names, snippets and examples are real.

- Every name in the context tables of templates.md exists in the context of a real customer, and
  every field of the context objects is in the tables.
- Every ```jinja and ```mjml snippet of templates.md compiles in the engine's environment; those
  marked ```mjml template (or ```jinja template, a text version) render for a real customer.
- Every ```yaml campaign file of campaigns.md passes `campaign check`, or, when a ```text block
  follows it, fails with exactly the lines shown there; one that names an example campaign is
  that file.
- The preview output both docs show is what `campaign preview` prints, and their links resolve.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from click.testing import CliRunner, Result
from jinja2 import Undefined

from cli import cli
from engine import bootstrap
from engine.campaigns import load_campaign
from engine.checks import check_workspace
from engine.emails import CampaignEmails
from engine.errors import EngineError
from engine.lint import check_html, check_mjml_source
from engine.render import EmailRenderer, make_environment
from engine.workspace import open_workspace

REPO = Path(__file__).resolve().parent.parent
TEMPLATES_DOC = REPO / "docs" / "templates.md"
CAMPAIGNS_DOC = REPO / "docs" / "campaigns.md"
NOW = datetime(2026, 11, 1)
CAMPAIGN = "spring"     # has a coupon, recommendations and recent orders
CUSTOMER = "C0000003"   # in its audience, with two orders
CONTEXT_SECTION = "## The context"
EXAMPLE_FILE = re.compile(r"# campaigns/([a-z][a-z0-9_]*)\.yaml")
_FENCE = re.compile(r"^```([\w-]*)[ \t]*([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_NAME = re.compile(r"`([a-z_]+(?:\[0\]|\.[a-z_]+)*)`")


class Block(NamedTuple):
    """A fenced code block of a doc: language, the word after it, text, place in the doc."""

    lang: str
    info: str
    body: str
    line: int
    start: int
    end: int


def _blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(m[1], m[2], m[3], text.count("\n", 0, m.start()) + 1, m.start(), m.end())
            for m in _FENCE.finditer(text)]


def _section(text: str, heading: str) -> str:
    assert f"\n{heading}\n" in text, f"no '{heading}' section"
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def _documented_names() -> list[str]:
    """The first column of every table row in the context section of templates.md."""
    section = _section(TEMPLATES_DOC.read_text(encoding="utf-8"), CONTEXT_SECTION)
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1].strip()
            found = _NAME.fullmatch(first)
            assert found, f"not a context name in the first column: {first}"
            names.append(found[1])
    return names


def _context_names(name: str, value: Any) -> Iterator[tuple[str, bool]]:
    """Every name a template can write for this value, and whether it must be documented
    (objects are documented through their fields, lists by themselves and their first item)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield name, False
        for field in dataclasses.fields(value):
            if not field.name.startswith("_"):
                yield from _context_names(f"{name}.{field.name}", getattr(value, field.name))
    elif isinstance(value, list | tuple):
        yield name, True
        if value:
            yield from _context_names(f"{name}[0]", value[0])
    else:
        yield name, True


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A copy of the example workspace on its own database, and one customer's context."""
    root = tmp_path_factory.mktemp("docs")
    for name in ("campaign.toml", "segments.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("campaigns", "templates", "data"):
        shutil.copytree(REPO / name, root / name)
    workspace = open_workspace(root, environ={"CAMPAIGN_SECRET_KEY": "k"})
    engine = bootstrap.open_database(workspace.settings, lambda _message: None,
                                     lambda *_args: None)
    with engine.connect() as connection:
        emails = CampaignEmails(workspace, connection, CAMPAIGN, NOW)
        context = emails.builder.build([emails.find_customer(CUSTOMER)])[0]
    yield SimpleNamespace(workspace=workspace, engine=engine, context=context,
                          campaign=emails.campaign)
    engine.dispose()


# -- (a) the context tables ------------------------------------------------------------------

def test_the_context_has_something_in_every_list(example):
    """Otherwise the names below `orders[0]` and the like could not be checked."""
    context = example.context
    assert context["orders"] and context["orders"][0].items and context["recommendations"]
    assert context["coupon"] is not None and context["customer"].attributes


def test_every_documented_context_name_exists(example):
    names = _documented_names()
    assert len(names) >= 40, "the context tables of docs/templates.md are missing"
    assert len(names) == len(set(names)), "a context name is documented twice"
    environment = make_environment(example.workspace.templates_dir, html=True)
    missing = [name for name in names if isinstance(
        environment.compile_expression(name, undefined_to_none=False)(**example.context),
        Undefined)]
    assert not missing, f"documented in docs/templates.md but not in the context: {missing}"


def test_every_context_field_is_documented_and_nothing_else(example):
    names = dict(pair for key, value in example.context.items()
                 for pair in _context_names(key, value))
    documented = set(_documented_names())
    undocumented = sorted(name for name, required in names.items()
                          if required and name not in documented)
    assert not undocumented, f"add these to the tables of docs/templates.md: {undocumented}"
    unknown = sorted(documented - set(names))
    assert not unknown, f"not fields of the context objects: {unknown}"


# -- (b) template snippets -------------------------------------------------------------------

SNIPPETS = [block for block in _blocks(TEMPLATES_DOC) if block.lang in ("jinja", "mjml")]


def test_templates_doc_has_snippets_and_full_templates():
    assert len(SNIPPETS) >= 10
    full = [block.lang for block in SNIPPETS if block.info == "template"]
    assert len(full) >= 3 and set(full) == {"mjml", "jinja"}
    assert {block.info for block in SNIPPETS} <= {"", "template"}


@pytest.mark.parametrize("block", SNIPPETS, ids=lambda block: f"line {block.line}")
def test_template_snippet_compiles(example, block):
    make_environment(example.workspace.templates_dir, html=True).from_string(block.body)


@pytest.mark.parametrize("block", [block for block in SNIPPETS if block.info == "template"],
                         ids=lambda block: f"line {block.line}")
def test_full_template_renders_for_a_customer(example, block):
    folder = example.workspace.templates_dir
    name = f"_docs/line{block.line}.mjml"
    (folder / "_docs").mkdir(exist_ok=True)
    if block.lang == "jinja":  # a text version: the spring template with this as its .txt
        shutil.copy(folder / example.campaign.template, folder / name)
        (folder / name).with_suffix(".txt").write_text(block.body, encoding="utf-8")
    else:
        (folder / name).write_text(block.body, encoding="utf-8")
    campaign = example.campaign
    renderer = EmailRenderer(folder, name, campaign.subject, campaign.preheader)
    email = renderer.render(example.context)
    assert email == renderer.render_straight(example.context)
    customer = example.context["customer"]
    assert customer.greeting_name in email.text and "{{" not in email.text + email.html
    if block.lang == "mjml":
        problems = check_mjml_source(block.body, name) + check_html(
            email.html, unsubscribe_url=example.context["links"].unsubscribe,
            postal_address=example.context["shop"].postal_address)
        assert not problems, [str(problem) for problem in problems]


def test_generated_text_version_in_templates_doc_is_real(example):
    shown = [block for block in _blocks(TEMPLATES_DOC)
             if block.lang == "text" and "\nHello Lena,\n" in block.body]
    assert len(shown) == 1
    text = _run_cli(example, "preview", CAMPAIGN, "--customer", CUSTOMER, "--text",
                    secret_key=None).stdout
    assert text.replace("\xa0", " ").rstrip("\n") == shown[0].body.rstrip("\n")


# -- (c) campaign files ----------------------------------------------------------------------

class CampaignExample(NamedTuple):
    block: Block
    errors: list[str]  # what `campaign check` prints; none: the file is right


def _campaign_examples() -> list[CampaignExample]:
    text = CAMPAIGNS_DOC.read_text(encoding="utf-8")
    blocks = _blocks(CAMPAIGNS_DOC)
    examples = []
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        if block.lang != "yaml":
            continue
        paired = following is not None and following.lang == "text" \
            and not text[block.end:following.start].strip()
        examples.append(CampaignExample(block, following.body.splitlines() if paired else []))
    return examples


CAMPAIGN_EXAMPLES = _campaign_examples()


def test_campaigns_doc_has_right_and_wrong_examples():
    assert sum(1 for example in CAMPAIGN_EXAMPLES if example.errors) >= 5
    assert sum(1 for example in CAMPAIGN_EXAMPLES if not example.errors) >= 5
    listed = {line for example in CAMPAIGN_EXAMPLES for line in example.errors}
    for block in _blocks(CAMPAIGNS_DOC):
        for line in block.body.splitlines():
            if re.match(r"campaigns/\S+: error: ", line):
                assert line in listed, f"line {block.line}: '{line}' follows no campaign file"


@pytest.mark.parametrize("case", CAMPAIGN_EXAMPLES, ids=lambda case: f"line {case.block.line}")
def test_campaign_example_checks_as_documented(example, case):
    header, _, content = case.block.body.partition("\n")
    named = EXAMPLE_FILE.fullmatch(header)
    assert named, f"line {case.block.line}: start the example with '# campaigns/NAME.yaml'"
    name = named[1]
    original = REPO / "campaigns" / f"{name}.yaml"
    if original.is_file():
        assert content == original.read_text(encoding="utf-8"), \
            f"line {case.block.line}: differs from campaigns/{name}.yaml"
    workspace = example.workspace
    path = workspace.campaigns_dir / f"{name}.yaml"
    kept = path.read_text(encoding="utf-8") if path.is_file() else None
    path.write_text(case.block.body, encoding="utf-8")
    try:
        try:
            loaded = load_campaign(workspace, name)
        except EngineError:
            loaded = None
        with example.engine.connect() as connection:
            report = check_workspace(workspace, connection, [name], NOW)
    finally:
        if kept is None:
            path.unlink()
        else:
            path.write_text(kept, encoding="utf-8")
    printed = [str(problem).replace(f"{workspace.root}/", "") for problem in report.problems]
    assert printed == case.errors
    assert (loaded is None) == bool(case.errors)
    if loaded is not None:
        assert report.recipients > 0, "an example whose audience is empty shows nothing"


def test_preview_lines_in_campaigns_doc_are_real(example):
    shown = next(block for block in _blocks(CAMPAIGNS_DOC)
                 if block.lang == "text" and block.body.startswith("To: "))
    result = _run_cli(example, "preview", CAMPAIGN, "--customer", CUSTOMER, "--text")
    assert result.stderr == shown.body


def _run_cli(example, *words: str, secret_key: str | None = "k") -> Result:
    """A command on the example copy as of NOW, with or without a secret key."""
    result = CliRunner().invoke(
        cli, ["--workspace", str(example.workspace.root), *words, "--now", NOW.date().isoformat()],
        env={"CAMPAIGN_SECRET_KEY": secret_key, "CAMPAIGN_DATABASE_URL": None,
             "CAMPAIGN_WORKSPACE": None})
    assert result.exit_code == 0, result.output
    return result


# -- links between the docs ------------------------------------------------------------------

def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("doc", [TEMPLATES_DOC, CAMPAIGNS_DOC], ids=lambda doc: doc.name)
def test_links_between_docs_resolve(doc):
    links = re.findall(r"\]\(([^)#]*)(?:#([^)]*))?\)", doc.read_text(encoding="utf-8"))
    local = [(target, anchor) for target, anchor in links if not target.startswith("http")]
    assert len(local) >= 5
    for target, anchor in local:
        path = doc.parent / target if target else doc
        assert path.is_file(), f"{doc.name}: broken link to {target}"
        if anchor:
            assert anchor in _anchors(path), f"{doc.name}: no heading for {target}#{anchor}"
