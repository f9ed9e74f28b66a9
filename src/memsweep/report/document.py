"""The report as data: sections of text, key-value items, tables and figures.

:mod:`memsweep.report.markdown` and :mod:`memsweep.report.page` render the same
sections, so the Markdown and the HTML never say different things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from memsweep.report.formats import plain


@dataclass
class Table:
    """A table: raw values (for sorting) and a formatter per column (for display)."""

    frame: pd.DataFrame
    formats: dict = field(default_factory=dict)

    def shown(self) -> pd.DataFrame:
        out = self.frame.copy()
        for column in out.columns:
            formatter = self.formats.get(column, plain)
            out[column] = [formatter(v) for v in out[column]]
        return out


def anchor(title: str) -> str:
    """A section's anchor, as GitHub makes one from a Markdown heading (lower case, spaces
    as hyphens, other punctuation dropped); the HTML page gives its headings the same."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list = field(default_factory=list)  # (kind, content): text|items|table|figure|link
    subsections: list[Section] = field(default_factory=list)

    def text(self, text: str) -> Section:
        self.blocks.append(("text", text))
        return self

    def items(self, items: list[tuple[str, str]]) -> Section:
        self.blocks.append(("items", items))
        return self

    def table(self, table: Table) -> Section:
        self.blocks.append(("table", table))
        return self

    def link(self, text: str, href: str) -> Section:
        """A link to a file beside the report (``href`` relative to the report's folder),
        or to a section of the report (``#`` and its :func:`anchor`)."""
        self.blocks.append(("link", (text, href)))
        return self

    def figure(self, name: str, path: Path, caption: str) -> Section:
        self.blocks.append(("figure", (name, Path(path), caption)))
        return self

    def flat(self) -> list[Section]:
        """This section, then its subsections in order (the renderers read a flat list)."""
        return [self, *(s for sub in self.subsections for s in sub.flat())]
