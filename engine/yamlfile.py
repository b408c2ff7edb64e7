"""YAML files that keep line numbers, so every complaint can say `file:line:column`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from engine.errors import WorkspaceError

Position = tuple[int, int]  # 1-based line and column


class _Constructor(RoundTripConstructor):
    """Dates and times stay text, so the engine parses them and reports mistakes in place."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)


def load_yaml(path: Path) -> Any:
    """The parsed document; syntax errors and duplicate keys become located WorkspaceErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(f"cannot read: {exc.strerror}", path=path,
                             hint="check that the file exists") from exc
    except UnicodeDecodeError as exc:
        raise WorkspaceError("not UTF-8 text", path=path, hint="save it as UTF-8") from exc
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        return yaml.load(text)
    except (YAMLError, RecursionError) as exc:
        line, column, problem = _where(text, exc)
        raise WorkspaceError(f"not valid YAML: {problem}", path=path, line=line, column=column,
                             hint="check the indentation and quoting around this place") from None
    except TypeError:  # ruamel cannot use a mapping or list as a mapping key
        raise WorkspaceError("not valid YAML here: a mapping key is itself a mapping or list",
                             path=path, line=1, column=1,
                             hint="keys must be plain names; check for '{' or '[' before a ':'"
                             ) from None


def _where(text: str, exc: BaseException) -> tuple[int, int, str]:
    """Line, column and description of a YAML error (1-based)."""
    if isinstance(exc, MarkedYAMLError) and (exc.problem_mark or exc.context_mark):
        mark = exc.problem_mark or exc.context_mark
        return mark.line + 1, mark.column + 1, str(exc.problem or exc.context)
    if isinstance(exc, ReaderError):
        before = text[:exc.position]
        return (before.count("\n") + 1, exc.position - before.rfind("\n"),
                f"{exc.reason} (character {exc.character!r})")
    return 1, 1, "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _position(lookup, where: Any, fallback: Position) -> Position:
    """1-based (line, column) from a ruamel `lc` lookup, or `fallback` when there is none."""
    try:
        line, column = lookup(where)
    except (AttributeError, KeyError, IndexError, TypeError):
        return fallback
    return line + 1, column + 1


def key_position(mapping: CommentedMap, key: Any, fallback: Position) -> Position:
    return _position(getattr(getattr(mapping, "lc", None), "key", None), key, fallback)


def value_position(mapping: CommentedMap, key: Any, fallback: Position) -> Position:
    return _position(getattr(getattr(mapping, "lc", None), "value", None), key, fallback)


def item_position(sequence: CommentedSeq, index: int, fallback: Position) -> Position:
    return _position(getattr(getattr(sequence, "lc", None), "item", None), index, fallback)
