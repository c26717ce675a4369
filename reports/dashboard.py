"""The report's figures and a summary note pushed into each study, and optuna-dashboard on the local host."""

from __future__ import annotations

import optuna
import optuna_dashboard

from reports.sections import Figure, Section
from reports.sources import Loaded, Source
from reports.tables import Table
from study.store import record

HOST = "127.0.0.1"


def _note(study: optuna.Study, tables: list[Table]) -> str:
    description = record.study_info(study).description.strip()
    body = "\n\n".join(f"**{t.title}**\n\n{t.shown.to_markdown(index=False, disable_numparse=True)}" for t in tables)
    return f"# {study.study_name}\n\n{description}\n\n## Report summary\n\n{body or 'No completed trial yet.'}\n"


def push(items: list[Loaded], sections: list[Section]) -> int:
    """Save every figure of each study as a dashboard graph (stable ids: re-running replaces them); returns how many."""
    pushed = 0
    for item in items:
        study = item.study
        tables: list[Table] = []
        for section in sections:
            for part in section.parts:
                if part.study != study.study_name:
                    continue
                for x in part.items:
                    if isinstance(x, Figure):
                        graph_id = f"report-{section.title.lower()}-{x.name}"
                        optuna_dashboard.save_plotly_graph_object(study, x.figure, graph_object_id=graph_id)
                        pushed += 1
                    elif isinstance(x, Table):
                        tables.append(x)
        optuna_dashboard.save_note(study, _note(study, tables))
    return pushed


def serve(source: Source, port: int) -> None:
    """optuna-dashboard on 127.0.0.1 over the storage, with its artifact store when there is one."""
    print(f"optuna-dashboard on http://{HOST}:{port}/ (Ctrl-C stops it)"
          + ("" if source.artifacts else "; no artifacts/ folder beside the storage, so no artifacts are shown"))
    optuna_dashboard.run_server(source.storage, host=HOST, port=port, artifact_store=source.artifacts)
