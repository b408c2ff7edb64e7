"""Finding the workspace folder and loading its settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import WorkspaceError
from engine.settings import SETTINGS_FILE, Settings, load_settings


@dataclass(frozen=True)
class Workspace:
    """A marketer's folder: campaign.toml, segments.yaml, campaigns/, templates/."""

    root: Path
    settings: Settings

    @property
    def segments_file(self) -> Path:
        return self.root / "segments.yaml"

    @property
    def campaigns_dir(self) -> Path:
        return self.root / "campaigns"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"


def find_root(start: Path, explicit: Path | None = None) -> Path:
    """The explicit folder if given, else the nearest one upward from `start` with campaign.toml."""
    if explicit is not None:
        if not (explicit / SETTINGS_FILE).is_file():
            raise WorkspaceError(f"no {SETTINGS_FILE} in this folder", path=explicit,
                                 hint="create one with 'campaign init DIR' or point --workspace "
                                      "at a folder that has one")
        return explicit.resolve()
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / SETTINGS_FILE).is_file():
            return folder
    raise WorkspaceError(f"no {SETTINGS_FILE} here or in any parent folder", path=start,
                         hint="run this inside a workspace, pass --workspace DIR, set "
                              "CAMPAIGN_WORKSPACE, or create one with 'campaign init DIR'")


def open_workspace(start: Path, explicit: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> Workspace:
    """Find the workspace and validate its settings."""
    root = find_root(start, explicit)
    return Workspace(root=root, settings=load_settings(root, environ))
