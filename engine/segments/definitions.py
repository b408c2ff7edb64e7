"""segments.yaml as a whole: every segment parsed, references resolved, cycles refused."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from engine.segments import tree as t
from engine.segments.parser import (
    NAME,
    ConditionParser,
    SegmentError,
    describe,
    suggest,
)
from engine.yamlfile import Position, key_position, load_yaml, value_position


def load_segments(path: Path, tiers: Collection[str] = ()) -> dict[str, t.Segment]:
    """Every segment of a segments.yaml file, validated together; raises SegmentError."""
    document = load_yaml(path)
    parser = ConditionParser(path, tiers)
    segments: dict[str, t.Segment] = {}
    top = (1, 1)
    if not isinstance(document, CommentedMap) or not isinstance(document.get("segments"),
                                                                  CommentedMap):
        parser.fail(top, "expected a 'segments:' mapping of segment names to conditions")
        raise SegmentError(parser.formatted())
    for key in document:
        if key != "segments":
            parser.fail(key_position(document, key, top),
                        f"unknown top-level key '{key}'; only 'segments:' belongs here")
    definitions = document["segments"]
    for name in definitions:
        where = key_position(definitions, name, top)
        segment = _segment(parser, name, definitions[name], where,
                           value_position(definitions, name, where))
        if segment is not None:
            segments[name] = segment
    check_references(parser, set(definitions))
    _check_cycles(parser, segments)
    if parser.problems:
        raise SegmentError(parser.formatted())
    return segments


def _segment(parser: ConditionParser, name: Any, body: Any, where: Position,
             body_at: Position) -> t.Segment | None:
    if not isinstance(name, str) or not NAME.match(name):
        parser.fail(where, f"segment name {describe(name)} must start with a letter and use only "
                           "letters, digits, '_' and '-'")
        return None
    if not isinstance(body, CommentedMap):
        parser.fail(body_at, f"segment '{name}' needs a condition, found {describe(body)}")
        return None
    description = body.get("description", "")
    if not isinstance(description, str):
        parser.fail(value_position(body, "description", where),
                    f"'description' must be text, found {describe(description)}")
    if not [key for key in body if key != "description"]:
        parser.fail(where, f"segment '{name}' has no condition; add one such as "
                           "'orders: {at_least: 1}'")
        return None
    condition = parser.condition(body, body_at, ignore=("description",))
    if condition is None or not isinstance(description, str):
        return None
    return t.Segment(name, description, condition, where)


def check_references(parser: ConditionParser, known: Collection[str]) -> None:
    """Every `segment:` reference names a defined segment."""
    for name, where in parser.references:
        if name not in known:
            parser.fail(where, f"unknown segment '{name}'{suggest(name, known)}")


def _check_cycles(parser: ConditionParser, segments: dict[str, t.Segment]) -> None:
    edges = {name: _references(segment.condition) for name, segment in segments.items()}
    reported: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name):] + [name]
            if not reported.intersection(cycle):
                reported.update(cycle)
                parser.fail(segments[cycle[0]].position, "segment references form a cycle: "
                            + " -> ".join(cycle) + "; remove one of these references")
            return
        for target in edges.get(name, ()):
            visit(target, [*path, name])

    for name in segments:
        visit(name, [])


def _references(condition: t.Condition) -> list[str]:
    if isinstance(condition, t.SegmentRef):
        return [condition.name]
    if isinstance(condition, t.All | t.AnyOf):
        return [name for item in condition.items for name in _references(item)]
    if isinstance(condition, t.Not):
        return _references(condition.item)
    return []
