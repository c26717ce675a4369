"""Every table beside the report as CSV (raw numbers), Markdown and LaTeX (booktabs, formatted) files."""

from __future__ import annotations

import re
from pathlib import Path

from reports.sections import Section
from reports.tables import Table


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "study"


def tables(sections: list[Section]) -> list[tuple[str, Table]]:
    """(file stem, table) for every table of the report, in page order."""
    return [(f"{_safe(part.study) + '-' if part.study else ''}{item.name}", item)
            for section in sections for part in section.parts for item in part.items if isinstance(item, Table)]


def write(sections: list[Section], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, table in tables(sections):
        csv, md, tex = (folder / f"{stem}.{ext}" for ext in ("csv", "md", "tex"))
        table.data.to_csv(csv, index=False)
        md.write_text(f"**{table.title}**\n\n{table.shown.to_markdown(index=False, disable_numparse=True)}\n")
        # pandas writes booktabs rules (\toprule, \midrule, \bottomrule); escape=True keeps _ and % from breaking LaTeX
        tex.write_text(table.shown.to_latex(index=False, escape=True, caption=table.title, label=f"tab:{stem}"))
        written += [csv, md, tex]
    return written
