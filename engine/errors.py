"""The one exception family of the engine: every user-facing failure says where and what next."""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """A problem the user can fix: `where: what is wrong; what to do next`."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(str(self))

    @property
    def where(self) -> str:
        """`path:line:column` with whatever parts are known."""
        parts = [p for p in (self.path, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}; {self.hint}" if self.hint else text


class SettingsError(EngineError):
    """campaign.toml or the environment holds a bad value."""


class WorkspaceError(EngineError):
    """No workspace found, or a workspace file is missing or malformed."""


class DatabaseError(EngineError):
    """The database is unreachable, or its schema is not the one the engine expects."""


class ImportFileError(EngineError):
    """A CSV file to import is unreadable or holds bad rows."""

    def __init__(self, message: str, *, problems: list[str] | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.problems = problems or []
