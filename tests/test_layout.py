"""The example spring email in real headless Chromium: the three product columns stand side by
side on a 600 px screen and stack on a 375 px phone; screenshots of both go to docs/screenshots.

Chromium must be installed (Debian: `apt-get install chromium`); the tests skip without it
unless CAMPAIGN_REQUIRE_BROWSER=1 (set by .ci/run), which turns the skip into a failure. Nothing
leaves the machine: every host name resolves to nothing, so the product images show their alt
text (mj-image sets the widths, so the layout does not depend on them).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
# The class MJML (mjml-python) gives each of the three columns of the recommendations section;
# its @media (min-width:480px) rule makes them a third wide, below 480 px they are 100% wide.
COLUMN = "mj-column-per-33-333332"
WIDTHS = (375, 600)
# Headless Chromium will not make a window narrower than 500 px for --dump-dom (innerWidth stays
# 500 with --window-size=375,...), so the layout is measured in iframes of the exact widths: an
# iframe is a viewport of its own for media queries. --screenshot does honour 375 px.
PROBE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><script>
const layout = {};
function measure(frame) {
  const doc = frame.contentDocument, view = doc.defaultView;
  const box = element => {
    const r = element.getBoundingClientRect();
    return {left: r.left, top: r.top, width: r.width, height: r.height};
  };
  const row = doc.getElementsByClassName(COLUMN)[0].parentElement;
  const style = view.getComputedStyle(row);
  const px = name => parseFloat(style[name]);
  const inset = side => px(`padding${side}`) + px(`border${side}Width`);
  const outer = box(row), left = inset("Left"), right = inset("Right");
  layout[frame.width] = {
    body: box(doc.body),
    content: {left: outer.left + left, width: outer.width - left - right},
    columns: Array.from(doc.getElementsByClassName(COLUMN), box),
  };
  document.getElementById("layout").textContent = JSON.stringify(layout);
}
</script></head><body style="margin:0">
FRAMES<pre id="layout"></pre>
</body></html>
"""


def find_chromium() -> str:
    """The chromium binary; skip the test without one, or fail when CAMPAIGN_REQUIRE_BROWSER=1."""
    binary = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if binary is None:
        reason = "Chromium not installed: apt-get install chromium"
        if os.environ.get("CAMPAIGN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (CAMPAIGN_REQUIRE_BROWSER=1 makes it mandatory)")
        pytest.skip(reason)
    return binary


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run headless Chromium offline with a fresh profile and return what it printed."""
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=2000", *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the header of a PNG file."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary, found once for the module."""
    return find_chromium()


@pytest.fixture(scope="module")
def email(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spring email as `campaign preview` writes it in this repository's example workspace."""
    folder = tmp_path_factory.mktemp("email")
    out = folder / "spring.html"
    result = CliRunner().invoke(
        cli, ["preview", "spring", "--now", "2026-11-01", "--out", str(out)],
        env={"CAMPAIGN_WORKSPACE": str(ROOT),
             "CAMPAIGN_DATABASE_URL": f"sqlite:///{folder / 'c.db'}"})
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def layouts(chromium: str, email: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """Boxes of the body, the columns' row and each product column, per viewport width."""
    folder = tmp_path_factory.mktemp("probe")
    srcdoc = html.escape(email.read_text(encoding="utf-8"), quote=True)
    frames = "".join(f'<iframe width="{width}" height="3000" style="display:block;border:0" '
                     f'onload="measure(this)" srcdoc="{srcdoc}"></iframe>\n' for width in WIDTHS)
    probe = folder / "probe.html"
    probe.write_text(PROBE.replace("COLUMN", json.dumps(COLUMN)).replace("FRAMES", frames),
                     encoding="utf-8")
    dom = run_chromium(chromium, folder / "profile", "--window-size=800,600", "--dump-dom",
                       probe.as_uri())
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom
    return {int(width): boxes for width, boxes in json.loads(html.unescape(found[1])).items()}


def test_layout_was_measured_at_both_widths(layouts: dict[int, dict[str, Any]]) -> None:
    """Each viewport is exactly as wide as asked, with all three product columns."""
    assert sorted(layouts) == list(WIDTHS)
    for width, layout in layouts.items():
        assert layout["body"]["width"] == width
        assert len(layout["columns"]) == 3


def test_columns_side_by_side_at_600(layouts: dict[int, dict[str, Any]]) -> None:
    """On a 600 px screen the columns share a row and split it into thirds."""
    content, columns = layouts[600]["content"], layouts[600]["columns"]
    assert content["width"] >= 600 - 2 * 25  # all of the body but the section's padding
    assert len({column["top"] for column in columns}) == 1
    assert columns[0]["left"] == pytest.approx(content["left"], abs=1)
    for left, right in pairwise(columns):
        assert right["left"] == pytest.approx(left["left"] + left["width"], abs=1)
    for column in columns:
        assert column["width"] == pytest.approx(content["width"] / 3, abs=2)


def test_columns_stacked_at_375(layouts: dict[int, dict[str, Any]]) -> None:
    """On a 375 px phone the columns are stacked, each as wide as the content area."""
    content, columns = layouts[375]["content"], layouts[375]["columns"]
    assert content["width"] >= 375 - 2 * 25
    assert len({column["left"] for column in columns}) == 1
    for above, below in pairwise(columns):
        assert below["top"] >= above["top"] + above["height"] > above["top"]
    for column in columns:
        assert column["left"] == pytest.approx(content["left"], abs=1)
        assert column["width"] == pytest.approx(content["width"], abs=2)


@pytest.mark.parametrize(("width", "height"), [(375, 1800), (600, 1600)])
def test_screenshot(chromium: str, email: Path, tmp_path: Path, width: int, height: int) -> None:
    """docs/screenshots/spring-WIDTH.png is written anew: a PNG of the asked size."""
    target = SCREENSHOTS / f"spring-{width}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    run_chromium(chromium, tmp_path / "profile", f"--window-size={width},{height}",
                 f"--screenshot={target}", email.as_uri())
    assert target.is_file()
    assert png_size(target) == (width, height)
