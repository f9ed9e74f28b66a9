"""The report's sections as Markdown."""

from __future__ import annotations

import html


def _text(value) -> str:
    # Markdown passes raw HTML through: a reason holding markup must show as text.
    return html.escape(str(value), quote=False)


def _cell(value) -> str:
    # A pipe ends a Markdown table cell and a newline ends the row.
    return _text(value).replace("|", "\\|").replace("\n", " ")


def _block(kind: str, content, figure_base: str) -> list[str]:
    if kind == "text":
        return [_text(content), ""]
    if kind == "items":
        return [f"- **{_text(k)}**: {_text(v)}" for k, v in content] + [""]
    if kind == "table":
        shown = content.shown().map(_cell)
        shown.columns = [_cell(c) for c in shown.columns]
        return [shown.to_markdown(index=False, disable_numparse=True), ""]
    if kind == "link":
        text, href = content
        return [f"[{_text(text)}]({href.replace(' ', '%20')})", ""]
    if kind == "figure":
        name, path, caption = content
        return [f"![{name}]({figure_base}/{path.name})", "", f"*{caption}*", ""]
    raise ValueError(f"unknown block kind {kind!r}")


def render(title: str, sections, figure_base: str = "figures") -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += ["#" * section.level + " " + section.title, ""]
        for kind, content in section.blocks:
            lines += _block(kind, content, figure_base)
    return "\n".join(lines)
