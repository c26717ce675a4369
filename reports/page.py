"""One self-contained HTML page: plotly.js embedded once, every user string escaped."""

from __future__ import annotations

from html import escape

import pandas as pd
import plotly.offline

from reports.sections import Figure, Section
from reports.tables import Table

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
.caption { font-weight: 600; margin: 1em 0 0.2em; }
.figure { margin: 0.5em 0 1.5em; } .leftout { color: #666; } footer { margin-top: 3em; font-size: 0.85em; }
.wide { overflow-x: auto; max-width: 100%; }  /* a table wider than the page scrolls by itself, not the page */
td { overflow-wrap: anywhere; }  /* long paths and commands wrap */
"""


def _table(table: Table) -> str:
    body = table.shown.to_html(index=False, escape=True, border=0, na_rep="–")
    return f'<p class="caption">{escape(table.title)}</p><div class="wide">{body}</div>'


def _figure(figure: Figure, div_id: str) -> str:
    # plotly writes figure data as JSON with "<" and "/" escaped, so user strings in it cannot close the script
    html = figure.figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                 config={"responsive": True})
    return f'<div class="figure">{html}</div>'


def _section(number: int, section: Section) -> str:
    out = [f"<h2>{number}. {escape(section.title)}</h2>"]
    figures = 0
    for part in section.parts:
        if part.study:
            out.append(f"<h3>{escape(part.study)}</h3>")
        for item in part.items:
            if isinstance(item, Table):
                out.append(_table(item))
            elif isinstance(item, Figure):
                figures += 1
                out.append(_figure(item, f"fig-{number}-{figures}-{item.name}"))
            else:
                out.append(f"<p>{escape(item)}</p>")
    if section.left_out:
        rows = "".join(f"<li><b>{escape(what)}</b>: {escape(why)}</li>" for what, why in section.left_out)
        out.append(f'<div class="leftout"><p>Left out of this section:</p><ul>{rows}</ul></div>')
    return "\n".join(out)


def render(title: str, sections: list[Section], provenance: pd.DataFrame) -> str:
    body = "\n".join(_section(n, s) for n, s in enumerate(sections, start=1))
    footer = provenance.to_html(index=False, escape=True, border=0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head><body>
<h1>{escape(title)}</h1>
{body}
<footer><h2>{len(sections) + 1}. Provenance</h2>{footer}</footer>
</body></html>
"""
