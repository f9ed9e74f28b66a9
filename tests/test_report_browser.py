"""The HTML report in a real headless Chromium: every image loads, no script error,
the tables sort, and a screenshot is kept for a person to look at.

A copy of the page gets a small probe script at the top of its <head>: it records
errors (window.onerror, console.error) from the start, and on load writes the state
of every image and the result of clicking a table header into the DOM, which
``chromium --dump-dom`` prints. No browser driver or new Python dependency.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from memsweep.report import figures
from memsweep.report import page as page_module
from memsweep.report.document import Section, Table

from .conftest import ROOT, require
from .test_report import workdir  # noqa: F401  (the session fixture: the small sweep's report)

pytestmark = pytest.mark.browser

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.src) || e.type));
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " "));
  __consoleError.apply(console, arguments);
};
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (image) {
    return {alt: image.alt, complete: image.complete, width: image.naturalWidth};
  });
  // Sort the first table whose first column holds numbers by that column, both ways,
  // and read the order back.
  var sorted = {};
  var table = Array.prototype.filter.call(document.querySelectorAll("table.sortable"),
    function (t) {
      var rows = t.tBodies[0].rows;
      return rows.length > 1 && rows[0].cells[0].dataset.sort !== undefined;
    })[0];
  if (table) {
    var header = table.querySelector("th");
    var column = function () {
      return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
        return parseFloat(row.cells[0].dataset.sort);
      });
    };
    header.click(); sorted.ascending = column();
    header.click(); sorted.descending = column();
  }
  // What is wider than the window: the page itself, and every element whose right edge
  // passes the window's. Inside a box that clips or scrolls, the box stands for it.
  var clipping = function (element) {
    for (var up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") { return up; }
    }
    return element;
  };
  var wide = [];
  Array.prototype.forEach.call(document.body.querySelectorAll("*"), function (element) {
    var right = clipping(element).getBoundingClientRect().right;
    if (right > window.innerWidth + 1 && wide.length < 20) {
      wide.push(element.tagName.toLowerCase() + " " + Math.round(right) + " px: " +
                (element.textContent || "").slice(0, 80));
    }
  });
  var width = {window: window.innerWidth, page: document.documentElement.scrollWidth,
               wide: wide};
  var out = document.createElement("pre");
  out.id = "memsweep-probe";
  out.textContent = JSON.stringify({images: images, errors: window.__errors, sorted: sorted,
                                    width: width});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    require(False, "no Chromium on PATH: install it with `bash scripts/system-deps.sh`")


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: the test may run as root in a container, where the sandbox cannot start.
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


# The window the page must fit: a laptop's, narrower than the page's widest tables.
WIDTH = 1280


def probe(page: Path, scratch: Path) -> dict:
    text = page.read_text()
    probed = scratch / f"probed-{page.name}"
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    result = run_chromium(f"--window-size={WIDTH},1000", "--hide-scrollbars",
                          "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())  # fmt: skip
    match = re.search(r'<pre id="memsweep-probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no probe output from Chromium:\n{result.stderr[-3000:]}"
    return json.loads(html.unescape(match.group(1)))


def screenshot(page: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    run_chromium("--window-size=1400,2400", "--hide-scrollbars", f"--screenshot={target}",
                 page.as_uri())  # fmt: skip
    assert target.exists() and target.stat().st_size > 10_000, target
    print(f"screenshot of {page}: {target}")
    return target


def fits_the_window(state: dict) -> None:
    """Nothing is wider than the window: a wide table scrolls inside its own box."""
    width = state["width"]
    assert width["window"] == WIDTH, width
    assert width["wide"] == [], width["wide"]
    assert width["page"] <= width["window"], width


def check(page: Path, scratch: Path) -> None:
    state = probe(page, scratch)
    assert state["errors"] == []
    fits_the_window(state)
    assert len(state["images"]) == len(figures.REGISTRY)
    for image in state["images"]:
        assert image["complete"] and image["width"] > 0, image
    ascending, descending = state["sorted"]["ascending"], state["sorted"]["descending"]
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)


@pytest.mark.workflow
def test_small_sweep_report_in_chromium(workdir, tmp_path_factory):  # noqa: F811
    page = workdir / "results/report/hotspots.html"
    scratch = tmp_path_factory.mktemp("browser")
    check(page, scratch)
    screenshot(page, scratch / "hotspots-small.png")


def test_checkout_report_in_chromium(tmp_path):
    """The report of this checkout's own last run, if there is one; the screenshot is
    kept beside it (results/ is ignored by git)."""
    page = ROOT / "results/report/hotspots.html"
    if not page.exists():
        pytest.skip("no results/report/hotspots.html: run `snakemake --cores all` first")
    check(page, tmp_path)
    screenshot(page, ROOT / "results/report/screenshots/hotspots.png")


def wide_page(path: Path, style: str | None = None) -> Path:
    """A report page with a table of 40 wide columns and an unbroken 600-character word."""
    frame = pd.DataFrame({f"column {i} of a wide table": ["x" * 30] for i in range(40)})
    section = Section("Wide").text("y" * 600).table(Table(frame))
    rendered = page_module.render("wide", [section])
    if style is not None:
        rendered = rendered.replace(page_module.STYLE, style)
    path.write_text(rendered)
    return path


def test_a_wide_table_scrolls_inside_its_box(tmp_path):
    fits_the_window(probe(wide_page(tmp_path / "wide.html"), tmp_path))


def test_the_probe_sees_a_page_wider_than_the_window(tmp_path):
    """Without the page's style the same table widens the page: the check must say so."""
    state = probe(wide_page(tmp_path / "unstyled.html", style=""), tmp_path)
    assert state["width"]["page"] > WIDTH
    assert any(entry.startswith("table ") for entry in state["width"]["wide"])
    with pytest.raises(AssertionError):
        fits_the_window(state)
