"""Templates to emails: sandboxed Jinja per recipient, MJML and CSS inlining once per structure.

`EmailRenderer.render` is the fast pipeline; `EmailRenderer.render_straight` is the
straightforward one (Jinja, MJML, premailer and text conversion for every recipient), kept as
the reference the fast one must equal and as the benchmark's baseline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    pass_context,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from engine import formatting
from engine.errors import EngineError
from engine.htmltext import html_to_text, tidy_text
from engine.skeleton import (
    SkeletonCache,
    SlotCodeGenerator,
    collecting_slots,
    compile_mjml,
    slot_value,
)

_PREVIEW_TAG = re.compile(r"<mj-preview\b", re.IGNORECASE)
_HEAD_OPEN = re.compile(r"<mj-head\s*>", re.IGNORECASE)
_MJML_OPEN = re.compile(r"<mjml\b[^>]*>", re.IGNORECASE)
_OBJECT_NAME = re.compile(r"'([\w.]+)' object|'([\w.]+) object'")
_PREHEADER = "<mj-preview>{{ campaign.preheader }}</mj-preview>"


class RenderError(EngineError):
    """A template that does not compile, or fails for a recipient; `reason` leaves out who."""

    def __init__(self, message: str, *, reason: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason or message


@dataclass(frozen=True)
class Email:
    """One recipient's rendered email."""

    subject: str
    html: str
    text: str


@pass_context
def _money(context: Context, amount: Any, currency: str | None = None) -> str:
    shop = context.get("shop")
    customer = context.get("customer")
    return formatting.money(amount, currency or getattr(shop, "currency", "EUR"),
                            getattr(customer, "locale", None))


@pass_context
def _date(context: Context, value: Any, style: str = "medium") -> str:
    if value is None:
        raise ValueError("the date filter got no date (the value is empty); guard it with "
                         "{% if ... %}")
    return formatting.day(value, getattr(context.get("customer"), "locale", None), style)


_SAFE_TYPES: dict[type, str] = {}


def template_safe(name: str) -> Callable[[type], type]:
    """Mark a class whose public attributes templates may read without sandbox checks; `name`
    is what error messages call its objects."""
    def register(cls: type) -> type:
        _SAFE_TYPES[cls] = name
        return cls
    return register


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with a short path for the engine's own context objects."""

    code_generator_class = SlotCodeGenerator

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) in _SAFE_TYPES and attribute[:1] != "_":
            try:
                return getattr(obj, attribute)
            except AttributeError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def make_environment(folder: Path, *, html: bool) -> SandboxedEnvironment:
    """The sandboxed Jinja environment for a templates folder (HTML: autoescape and slots)."""
    environment = _Sandbox(
        loader=FileSystemLoader(folder), autoescape=html, undefined=StrictUndefined,
        finalize=slot_value if html else None, auto_reload=False)
    environment.filters["money"] = _money
    environment.filters["date"] = _date
    return environment


class EmailRenderer:
    """A campaign's subject, MJML template and optional text template, ready for recipients."""

    def __init__(self, folder: Path, template: str, subject: str, preheader: str = "") -> None:
        self.folder = folder
        self.template_name = template
        html_env = make_environment(folder, html=True)
        text_env = make_environment(folder, html=False)
        self.subject = _compile(lambda: text_env.from_string(subject), "subject")
        self.preheader = _compile(lambda: text_env.from_string(preheader), "preheader")
        source = self._source(html_env, template)
        if preheader and not _PREVIEW_TAG.search(source):
            source = _with_preheader(source)
        path = folder / template
        self.html = _compile(lambda: html_env.template_class.from_code(
            html_env, html_env.compile(source, template, str(path)),
            html_env.make_globals(None), None), template, path)
        text_name = str(Path(template).with_suffix(".txt"))
        self.text = (_compile(lambda: text_env.get_template(text_name), text_name,
                              folder / text_name)
                     if (folder / text_name).is_file() else None)
        self.skeletons = SkeletonCache()

    @staticmethod
    def _source(environment: SandboxedEnvironment, template: str) -> str:
        try:
            source, _filename, _uptodate = environment.loader.get_source(environment, template)
        except TemplateNotFound as exc:
            raise RenderError("template not found", path=exc.name,
                              hint="check the campaign's 'template:' entry") from None
        return source

    def context_for(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The template context with `campaign.subject` and `.preheader` rendered for it."""
        subject = _run(self.subject, context, "subject").strip()
        preheader = _run(self.preheader, context, "preheader").strip()
        campaign = context["campaign"].rendered(subject, preheader)
        return {**context, "campaign": campaign}

    def render(self, context: Mapping[str, Any]) -> Email:
        """The email for one recipient; the MJML is compiled only for structures not seen yet."""
        full = self.context_for(context)
        with collecting_slots() as values:
            skeleton = _run(self.html, full, self.template_name)
        html, text = self.skeletons.render(skeleton, values)
        return Email(full["campaign"].subject, html, text if self.text is None
                     else self._text_template(full))

    def render_straight(self, context: Mapping[str, Any]) -> Email:
        """The same email the plain way: Jinja, MJML, premailer and text conversion each time."""
        full = self.context_for(context)
        html = compile_mjml(_run(self.html, full, self.template_name))
        return Email(full["campaign"].subject, html, tidy_text(html_to_text(html))
                     if self.text is None else self._text_template(full))

    def _text_template(self, context: Mapping[str, Any]) -> str:
        return _run(self.text, context, str(Path(self.template_name).with_suffix(".txt")))


def _with_preheader(source: str) -> str:
    """The MJML with an `<mj-preview>` showing the campaign's preheader."""
    if _HEAD_OPEN.search(source):
        return _HEAD_OPEN.sub(lambda m: m[0] + _PREHEADER, source, count=1)
    return _MJML_OPEN.sub(lambda m: f"{m[0]}<mj-head>{_PREHEADER}</mj-head>", source, count=1)


def _compile(load, name: str, path: Path | None = None) -> Template:
    try:
        return load()
    except TemplateSyntaxError as exc:
        raise RenderError(f"template syntax error: {exc.message}",
                          path=exc.filename or path or name, line=exc.lineno,
                          hint="fix the Jinja tag at this line ({{ value }}, {% if %}...)"
                          ) from None
    except TemplateNotFound as exc:
        raise RenderError(f"template not found: {exc.name}", path=path or name,
                          hint="create it under the templates folder or fix the name"
                          ) from None


def _run(template: Template, context: Mapping[str, Any], name: str) -> str:
    """Render, turning template failures into RenderError at the template's line."""
    try:
        return template.render(context)
    except (UndefinedError, SecurityError, TemplateError, TypeError, ValueError,
            ArithmeticError, AttributeError, KeyError) as exc:
        path, line = _template_line(exc.__traceback__, name)
        customer = context.get("customer")
        who = f" for customer {customer.customer_id} <{customer.email}>" if customer else ""
        reason = _OBJECT_NAME.sub(_object_name, getattr(exc, "message", None) or str(exc))
        raise RenderError(f"{reason}{who}", path=path, line=line, hint=_hint(exc),
                          reason=reason) from None


def _object_name(match: re.Match) -> str:
    """'customer' for 'engine.context.CustomerView object' in Jinja's messages."""
    found = match[1] or match[2]
    for cls, name in _SAFE_TYPES.items():
        if found in (f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
            return name
    return match[0]


def _template_line(traceback: TracebackType | None, name: str) -> tuple[str, int | None]:
    """The template file and line where rendering failed (Jinja rewrites its frames)."""
    found: tuple[str, int | None] = (name, None)
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename.endswith((".mjml", ".txt", ".html")) or filename == "<template>":
            found = (name if filename == "<template>" else filename, traceback.tb_lineno)
        traceback = traceback.tb_next
    return found


def _hint(exc: Exception) -> str:
    if isinstance(exc, UndefinedError):
        return ("check the spelling against the context names in docs/templates.md, or guard "
                "it with {% if ... is defined %}")
    if isinstance(exc, SecurityError):
        return "templates may only read values, not call internals"
    return "check the expression at this line"
