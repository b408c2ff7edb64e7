"""YAML files that keep line numbers, so every complaint can say `file:line:column`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from engine.errors import WorkspaceError

Position = tuple[int, int]  # 1-based line and column


def load_yaml(path: Path) -> Any:
    """The parsed document; syntax errors and duplicate keys become located WorkspaceErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(f"cannot read: {exc.strerror}", path=path,
                             hint="check that the file exists") from exc
    except UnicodeDecodeError as exc:
        raise WorkspaceError("not UTF-8 text", path=path, hint="save it as UTF-8") from exc
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise WorkspaceError(
            f"not valid YAML: {exc.problem or exc.context}", path=path,
            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
            hint="check the indentation and quoting around this place") from None


def key_position(mapping: CommentedMap, key: Any, fallback: Position) -> Position:
    try:
        line, column = mapping.lc.key(key)
    except (AttributeError, KeyError, TypeError):
        return fallback
    return line + 1, column + 1


def value_position(mapping: CommentedMap, key: Any, fallback: Position) -> Position:
    try:
        line, column = mapping.lc.value(key)
    except (AttributeError, KeyError, TypeError):
        return fallback
    return line + 1, column + 1


def item_position(sequence: CommentedSeq, index: int, fallback: Position) -> Position:
    try:
        line, column = sequence.lc.item(index)
    except (AttributeError, KeyError, IndexError, TypeError):
        return fallback
    return line + 1, column + 1
