"""Which sections the stored studies support: tables and figures per study, and what was left out and why."""

from __future__ import annotations

import importlib.metadata
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState

from reports import ablation, ablation_path, baselines, diagnostics, figures, final, search
from reports.sources import Loaded
from reports.tables import Table, best, complete, devices
from study.store import checks, owners, record
from study.store.vocabulary import Design, StudyKind

MALFORMED_SHOWN = 10  # malformed attributes named one by one; the rest are counted
PACKAGES = ("torch", "torchvision", "optuna", "optuna-dashboard", "plotly", "pandas", "scipy")


@dataclass(frozen=True)
class Figure:
    name: str  # unique within its study: the optuna-dashboard graph id
    figure: go.Figure


Item = Table | Figure | str  # a str is a paragraph of plain text


@dataclass
class Part:
    study: str  # "" for a part that belongs to no one study
    items: list[Item] = field(default_factory=list)


@dataclass
class Section:
    title: str
    parts: list[Part] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    def add(self, item: Table | str, study: str, what: str,
            make_figure: Callable[[pd.DataFrame], go.Figure] | None = None) -> None:
        """Add a table (and the figure drawn from it) to `study`'s part, or note why `what` is left out."""
        if isinstance(item, str):
            self.left_out.append((f"{study}: {what}", item))
            return
        part = self.part(study)
        part.items.append(item)
        if make_figure is not None:
            part.items.append(Figure(item.name, make_figure(item.data)))

    def part(self, study: str) -> Part:
        if not self.parts or self.parts[-1].study != study:
            self.parts.append(Part(study))
        return self.parts[-1]


def _status(study: optuna.Study) -> str | None:
    """A sentence for a study that has nothing to show."""
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return f"Study {study.study_name} has no trials yet."
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if len(failed) == len(trials):
        reasons = sorted({record.trial_info(t).fail_reason or "no reason stored" for t in failed})
        return f"All {len(trials)} trials of {study.study_name} failed ({'; '.join(reasons)})."
    return None


def overview(items: list[Loaded]) -> Section:
    section = Section("Overview")
    part = section.part("")
    part.items.append(search.overview([i.study for i in items]))
    for i in items:
        text = _status(i.study)
        description = record.study_info(i.study).description.strip()
        if text or description:
            part.items.append(f"{i.study.study_name}: {text or description.splitlines()[0]}")
        workers, hosts = owners.workers_and_hosts(i.study.get_trials(deepcopy=False))
        if workers:  # trials of studies stored before owners were recorded name none
            part.items.append(f"{i.study.study_name}: trained by {workers} worker process{'es' * (workers > 1)} "
                              f"on {hosts} host{'s' * (hosts > 1)}.")
        bad = checks.malformed(i.study)
        if bad:
            more = f"; and {len(bad) - MALFORMED_SHOWN} more" if len(bad) > MALFORMED_SHOWN else ""
            section.left_out.append((f"{i.study.study_name}: malformed stored attributes, each left out of every "
                                     "section", "; ".join(bad[:MALFORMED_SHOWN]) + more))
    return section


def search_section(items: list[Loaded]) -> Section:
    section = Section("Search")
    for i in items:
        study, name = i.study, i.study.study_name
        if not complete(study):
            section.left_out.append((name, _status(study) or "no completed trial"))
            continue
        section.add(search.top_trials(study), name, "top trials")
        part = section.part(name)
        part.items.append(Figure("history", figures.history(study)))
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            part.items.append(Figure("learning_curves", figures.learning_curves(study)))
        else:
            section.left_out.append((f"{name}: learning curves", "no trial reported intermediate values"))
        section.add(search.importances(study), name, "parameter importances", figures.importances)
        if any(t.params for t in complete(study)):
            part.items += [Figure("parallel", figures.parallel(study)),
                           Figure("slices", figures.slices(search.slice_data(study)))]
        else:
            section.left_out.append((f"{name}: parallel coordinates and slices", "no trial has searched parameters"))
        section.add(search.reference_vs_best(study), name, "reference against best")
    return section


def ablation_section(items: list[Loaded], min_effect: float = ablation.MIN_EFFECT) -> Section:
    section = Section("Ablation")
    for i in items:
        study, name, kind = i.study, i.study.study_name, search.kind(i.study)
        if kind == StudyKind.ABLATION:
            table = ablation.variants(study, min_effect=min_effect)
            section.add(table, name, "variants", figures.variant_bars)
            if not isinstance(table, str) and (table.data["test"] != "").any():
                section.part(name).items.append(Figure("forest", figures.forest(table.data)))
            if record.study_info(study).design == Design.FACTORIAL:
                section.add(ablation.main_effects(study), name, "main effects")
                section.add(ablation.interactions(study), name, "interactions")
        elif kind == StudyKind.ABLATION_PATH:
            section.add(ablation_path.path(study), name, "ablation path", figures.waterfall)
    return section


def baselines_section(items: list[Loaded], everything: list[Loaded]) -> Section:
    section = Section("Baselines")
    for i in items:
        study, name = i.study, i.study.study_name
        table = baselines.models(study, final.of([j.study for j in everything], name))
        section.add(table, name, "models")
        if isinstance(table, str):
            continue
        part = section.part(name)
        curves = baselines.effort(study)
        if curves.empty:
            section.left_out.append((f"{name}: training effort", "no per-epoch validation accuracy stored"))
        else:
            part.items.append(Figure("effort", figures.effort(curves)))
        fractions = baselines.data_requirements(study)
        if fractions["data_fraction"].nunique() > 1:
            part.items.append(Figure("data_requirements", figures.data_requirements(fractions)))
        else:
            section.left_out.append((f"{name}: data requirements", "every run used the same data fraction"))
        part.items += [Figure("flops", figures.cost(table.data, "flops_per_image", "FLOPs per image")),
                       Figure("params", figures.cost(table.data, "params", "parameters"))]
    return section


def final_section(items: list[Loaded]) -> Section:
    section = Section("Final test")
    for i in items:
        section.add(final.scores(i.study), i.study.study_name, "final test scores")
    return section


def diagnostics_section(items: list[Loaded]) -> Section:
    section = Section("Diagnostics")
    for i in items:
        study, name = i.study, i.study.study_name
        top = best(study)
        if top is None:
            section.left_out.append((name, _status(study) or "no completed trial"))
            continue
        d = record.dataset(record.study_info(study))
        classes = d.classes if d is not None else []
        d = diagnostics.of(top, classes, i.source.artifacts)
        part = section.part(name)
        part.items.append(f"Best trial: {top.number}.")
        if d.confusion is not None:
            part.items.append(Figure("confusion", figures.confusion(d)))
            section.add(diagnostics.per_class(d), name, "per-class accuracy", figures.per_class)
        else:
            section.left_out.append((f"{name}: confusion matrix",
                                     f"trial {top.number} has none stored (or its artifact is missing)"))
        if len(d.curves):
            part.items.append(Figure("train_vs_val", figures.train_vs_val(d)))
        else:
            section.left_out.append((f"{name}: train against validation", f"trial {top.number} stored no accuracy curves"))
        if d.grad_norms:
            part.items.append(Figure("grad_norms", figures.grad_norms(d)))
        else:
            section.left_out.append((f"{name}: gradient norms",
                                     f"not recorded for trial {top.number} (set record_grad_norms=True)"))
    return section


def as_typed(command: str) -> str:
    """`/.../study/__main__.py run ...`, as studies stored before commands were recorded as typed,
    reads `python -m study run ...`."""
    return re.sub(r"^\S*study/__main__\.py(?=\s|$)", "python -m study", command)


def provenance(items: list[Loaded], command: str) -> pd.DataFrame:
    rows = [(f"{p} version", importlib.metadata.version(p)) for p in PACKAGES]
    rows.append(("python version", platform.python_version()))
    for i in items:
        s, info = i.study, record.study_info(i.study)
        d = record.dataset(info) or record.Dataset()
        rows += [
            (f"{s.study_name}: storage", i.source.label),
            (f"{s.study_name}: device", devices(s)),
            (f"{s.study_name}: data", f"{d.root or 'not recorded'} ({_or(d.train_images, '?')} train / "
                                      f"{_or(d.test_images, '?')} test images)"),
            *[(f"{s.study_name}: command", as_typed(c)) for c in info.commands],
        ]
    rows += [("report command", command), ("generated", datetime.now(timezone.utc).isoformat(timespec="seconds"))]
    return pd.DataFrame(rows, columns=["field", "value"])


def build(items: list[Loaded], min_effect: float = ablation.MIN_EFFECT) -> list[Section]:
    """Every section in page order; a section no study supports is kept empty with the reason.

    `min_effect`: the smallest accuracy difference worth detecting, which "seeds needed" aims at."""
    parts = (((StudyKind.SEARCH,), search_section, "Search"),
             ((StudyKind.ABLATION, StudyKind.ABLATION_PATH), lambda chosen: ablation_section(chosen, min_effect), "Ablation"),
             ((StudyKind.COMPARISON,), lambda chosen: baselines_section(chosen, items), "Baselines"),
             ((StudyKind.FINAL,), final_section, "Final test"))
    sections = [overview(items)]
    for kinds, make, title in parts:
        chosen = [i for i in items if search.kind(i.study) in kinds]
        if chosen:
            sections.append(make(chosen))
        elif kinds == (StudyKind.FINAL,):
            why = ("no final study among the inputs: `python -m study final <db>` scores the chosen configurations "
                   "once on the test set")
            sections.append(Section(title, left_out=[("all studies", why)]))
        else:
            kinds_found = ", ".join(sorted({search.kind(i.study) for i in items}))
            missing = f"no {' or '.join(k.value for k in kinds)} study among the inputs (found: {kinds_found})"
            sections.append(Section(title, left_out=[("all studies", missing)]))
    sections.append(diagnostics_section(items))
    return sections


def _or(value: Any, missing: str) -> Any:
    return missing if value is None else value
