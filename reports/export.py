"""Every table beside the report as CSV (raw numbers), Markdown and LaTeX (booktabs, formatted) files."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from reports.sections import Section
from reports.tables import Table

MAX_STEM = 100  # of a study's part of a file name: a file name holds 255 bytes, the table's name follows


def _safe(name: str) -> str:
    """A file-name stem for a study: its name where that is one, else the name made safe and a digest of
    the exact name, so that studies whose names read alike once made safe ("run 1", "run_1", "run/1")
    keep apart."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "study"
    if safe == name and len(safe) <= MAX_STEM:
        return safe
    return f"{safe[:MAX_STEM]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def tables(sections: list[Section]) -> list[tuple[str, Table]]:
    """(file stem, table) for every table of the report, in page order; stems unique (two storages may
    hold studies of the same name: the second one's files are numbered)."""
    out: list[tuple[str, Table]] = []
    taken: set[str] = set()
    for section in sections:
        for part in section.parts:
            for item in part.items:
                if isinstance(item, Table):
                    stem = f"{_safe(part.study) + '-' if part.study else ''}{item.name}"
                    unique, n = stem, 1
                    while unique in taken:
                        n += 1
                        unique = f"{stem}-{n}"
                    taken.add(unique)
                    out.append((unique, item))
    return out


def write_atomically(path: Path, text: str) -> None:
    """`path` holds `text` whole, or (a full disk, an error) stays as it was: written beside it, then renamed."""
    scratch = path.with_name(f".{path.name[:200]}.{os.getpid()}.tmp")
    try:
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def write(sections: list[Section], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, table in tables(sections):
        csv, md, tex = (folder / f"{stem}.{ext}" for ext in ("csv", "md", "tex"))
        write_atomically(csv, table.data.to_csv(index=False))
        write_atomically(md, f"**{table.title}**\n\n{table.shown.to_markdown(index=False, disable_numparse=True)}\n")
        # pandas writes booktabs rules (\toprule, \midrule, \bottomrule); escape=True keeps _ and % from breaking LaTeX
        write_atomically(tex, table.shown.to_latex(index=False, escape=True, caption=table.title, label=f"tab:{stem}"))
        written += [csv, md, tex]
    return written
