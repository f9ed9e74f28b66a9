"""The hotspot report: queries over the measurement table, rankings, fits, claims,
figures and sections, rendered as Markdown and HTML."""
