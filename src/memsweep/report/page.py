"""The report's sections as one HTML page: offline, figures embedded, tables sortable.

Every string that comes from data (a configuration, a reason, a claim, a caption)
goes through :func:`html.escape`; the only markup is what this module writes.
Figures are embedded as base64 PNG so the page can be mailed or moved alone. The
sorter is a few lines of inline JavaScript: no network, no CDN.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from memsweep.report.document import anchor

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1, h2, h3, p, dd, dt, figcaption { overflow-wrap: anywhere; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
td { overflow-wrap: break-word; }  /* long words break; the table may scroll */
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
tr:nth-child(even) td { background: #fafafa; }
/* A wide table scrolls inside its own box: the page never grows wider than the window. */
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; color: #444; }
dl { display: grid; grid-template-columns: minmax(8em, max-content) minmax(0, 1fr);
     gap: 2px 12px; }
dt { font-weight: 600; max-width: 24em; } dd { margin: 0; min-width: 0; }
"""

# Click a header: sort by that column, numbers by their data-sort value, then text.
SORTER = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var ascending = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(ascending ? "asc" : "desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var nx = parseFloat(x.dataset.sort), ny = parseFloat(y.dataset.sort);
        var order;
        if (!isNaN(nx) && !isNaN(ny)) { order = nx - ny; }
        else if (!isNaN(nx)) { order = -1; } else if (!isNaN(ny)) { order = 1; }
        else { order = x.textContent.localeCompare(y.textContent); }
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _sort_key(value) -> str | None:
    """A number to sort by, or None (the cell then sorts by its text)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else repr(number)  # NaN sorts as text ("—")


def table(block) -> str:
    shown = block.shown()
    raw = block.frame
    head = "".join(f"<th>{esc(column)}</th>" for column in shown.columns)
    body = []
    for position in range(len(shown)):
        cells = []
        for index in range(len(shown.columns)):
            key = _sort_key(raw.iloc[position, index])
            attribute = f' data-sort="{esc(key)}"' if key is not None else ""
            cells.append(f"<td{attribute}>{esc(shown.iloc[position, index])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table class="sortable"><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def figure(name: str, path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure id="{esc(name)}"><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def render(title: str, sections) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for section in sections:
        level = min(max(section.level, 2), 4)
        parts.append(f'<h{level} id="{esc(anchor(section.title))}">{esc(section.title)}</h{level}>')
        for kind, content in section.blocks:
            if kind == "text":
                parts.append(f"<p>{esc(content)}</p>")
            elif kind == "items":
                rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in content)
                parts.append(f"<dl>{rows}</dl>")
            elif kind == "table":
                parts.append(table(content))
            elif kind == "figure":
                parts.append(figure(*content))
            elif kind == "link":
                text, href = content
                parts.append(f'<p><a href="{esc(href)}">{esc(text)}</a></p>')
    parts.append(f"<script>{SORTER}</script></body></html>")
    return "\n".join(parts) + "\n"
