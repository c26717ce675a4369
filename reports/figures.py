"""Plotly figures drawn from the tables' plain data (and, where Optuna draws it well, from the study)."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState
from plotly.subplots import make_subplots

from reports import stats
from reports.diagnostics import Diagnostics

GREY = "rgba(150,150,150,0.45)"
HEIGHT = 420
SLICE_COLUMNS = 3


def _styled(fig: go.Figure, title: str, **layout) -> go.Figure:
    fig.update_layout(**{"title": title, "template": "plotly_white", "height": HEIGHT,
                         "margin": dict(l=60, r=30, t=60, b=50), **layout})
    return fig


def history(study: optuna.Study) -> go.Figure:
    return _styled(optuna.visualization.plot_optimization_history(study), "Optimization history")


def parallel(study: optuna.Study) -> go.Figure:
    return _styled(optuna.visualization.plot_parallel_coordinate(study), "Parallel coordinates")


def slices(data: pd.DataFrame) -> go.Figure:
    """Accuracy against each parameter, SLICE_COLUMNS panels a row.

    Drawn here rather than by optuna.visualization.plot_slice, which puts every parameter in one row
    300 px wide each (wider than the page from five parameters on) with crowded log-axis ticks.
    """
    names = list(dict.fromkeys(data["parameter"]))
    rows = -(-len(names) // SLICE_COLUMNS)
    fig = make_subplots(rows=rows, cols=SLICE_COLUMNS, subplot_titles=names, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.5 / rows)
    for k, name in enumerate(names):
        part = data[data["parameter"] == name]
        row, col = k // SLICE_COLUMNS + 1, k % SLICE_COLUMNS + 1
        fig.add_scatter(x=part["x"], y=part["val_accuracy"], mode="markers", showlegend=False, customdata=part["trial"],
                        marker=dict(color=part["trial"], colorscale="Blues", size=8, line=dict(width=0.5, color="grey")),
                        hovertemplate=f"trial %{{customdata}}<br>{name} %{{x}}<br>accuracy %{{y:.2%}}<extra></extra>",
                        row=row, col=col)
        axis = part["axis"].iloc[0]
        # one tick per decade, written 10^-3, so that log axes (lr, weight decay) stay readable when narrow
        ticks = (dict(type="log", dtick=1, exponentformat="power") if axis == "log"
                 else dict(type=axis, nticks=6, categoryorder="category ascending"))
        fig.update_xaxes(row=row, col=col, **ticks)
    fig.update_yaxes(tickformat=".0%", col=1, title_text="validation accuracy")
    return _styled(fig, "Slice plots (validation accuracy against each parameter; darker: later trial)",
                   height=max(HEIGHT, 300 * rows + 80))


def learning_curves(study: optuna.Study) -> go.Figure:
    """Validation accuracy per epoch of every trial; pruned ones grey (Optuna's own plot does not tell them apart)."""
    fig = go.Figure()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        pruned = t.state == TrialState.PRUNED
        fig.add_scatter(
            x=steps, y=[t.intermediate_values[s] for s in steps], mode="lines+markers", name=f"trial {t.number}",
            line=dict(color=GREY, width=1) if pruned else dict(width=2), marker=dict(size=4),
            legendgroup="pruned" if pruned else "complete", legendgrouptitle_text="pruned" if pruned else "complete",
        )
    return _styled(fig, "Learning curves (validation accuracy; pruned trials grey)",
                   xaxis_title="epoch", yaxis_title="validation accuracy")


def importances(data: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("PED-ANOVA", "fANOVA"), shared_yaxes=True)
    for col, name in enumerate(("ped_anova", "fanova"), start=1):
        fig.add_bar(x=data[f"{name}_mean"], y=data["parameter"], orientation="h", name=name, showlegend=False,
                    error_x=dict(type="data", array=data[f"{name}_std"].fillna(0)), row=1, col=col)
    return _styled(fig, "Parameter importances (mean ± std over bootstrap fits)", xaxis_title="importance",
                   xaxis2_title="importance")


def variant_bars(data: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Bar(
        x=[f"{v} (n={n})" for v, n in zip(data["variant"], data["n"])], y=data["val_accuracy_mean"],
        error_y=dict(type="data", array=data["val_accuracy_std"].fillna(0)),
    ))
    # from zero: a cut axis makes a point of accuracy look like a doubling; the forest plot shows the deltas
    return _styled(fig, "Validation accuracy per variant (mean ± std over seeds; axis from 0)",
                   yaxis_title="validation accuracy", yaxis_range=[0, 1], yaxis_tickformat=".0%")


def forest(data: pd.DataFrame) -> go.Figure:
    """Each arm's delta against the reference with its 95% CI, the test and Holm-adjusted p beside it.

    An unbounded interval (a test too weak at its seed count to reject any shift) is drawn to the plot's
    edge and said in the arm's label."""
    arms = data[data["test"] != ""].iloc[::-1]  # top to bottom in table order
    unbounded = ~(np.isfinite(arms["ci_low"]) & np.isfinite(arms["ci_high"])) & arms["ci_low"].notna()
    labels = [f"{v} ({t}{', CI unbounded' if u else ''})" for v, t, u in zip(arms["variant"], arms["test"], unbounded)]
    finite = pd.concat([arms["delta"], arms["ci_low"], arms["ci_high"], pd.Series([0.0])])
    finite = finite[np.isfinite(finite.astype(float))]
    pad = 0.1 * max(float(finite.max() - finite.min()), 0.01)  # zero (no change) always inside, off the edge
    low, high = float(finite.min()) - pad, float(finite.max()) + pad
    ci_low, ci_high = arms["ci_low"].clip(lower=low), arms["ci_high"].clip(upper=high)
    fig = go.Figure(go.Scatter(
        x=arms["delta"], y=labels, mode="markers", marker=dict(size=10, color="black"),
        error_x=dict(type="data", symmetric=False, array=(ci_high - arms["delta"]).fillna(0),
                     arrayminus=(arms["delta"] - ci_low).fillna(0)),
        customdata=arms[["p", "p_holm"]].to_numpy(),
        hovertemplate="Δ %{x:+.2%}<br>p %{customdata[0]:.3g}, Holm %{customdata[1]:.3g} (two-sided)<extra></extra>",
    ))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    return _styled(fig, "Δ accuracy against the reference with 95% CI (dashed: no change)",
                   xaxis_title="Δ validation accuracy", xaxis_tickformat="+.1%", xaxis_range=[low, high],
                   yaxis_automargin=True,
                   height=max(HEIGHT // 2, 60 * len(arms) + 140))


def waterfall(data: pd.DataFrame) -> go.Figure:
    """The reference's accuracy, then what each step of the path added."""
    labels = ["reference", *[f"{s}. {p}" for s, p in zip(data["step"][1:], data["parameter"][1:])]]
    fig = go.Figure(go.Waterfall(
        x=labels, y=[data["val_accuracy_mean"].iloc[0], *data["gain"].iloc[1:]],
        measure=["absolute", *["relative"] * (len(data) - 1)], textposition="outside",
        text=[f"{data['val_accuracy_mean'].iloc[0]:.2%}", *[f"{g:+.2%}" for g in data["gain"].iloc[1:]]],
    ))
    # each step's mean is the running total; the axis spans those, so that gains of a point show
    low, high = data["val_accuracy_mean"].min(), data["val_accuracy_mean"].max()
    pad = max(0.02, 0.2 * (high - low))
    return _styled(fig, "Ablation path: accuracy added by each change (axis zoomed: it does not start at 0)",
                   yaxis_title="validation accuracy (axis cut)",
                   yaxis_tickformat=".0%", yaxis_range=[max(0.0, low - pad), min(1.0, high + pad)])


def effort(data: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for model, rows in data.groupby("model", sort=False):
        fig.add_scatter(x=rows["epoch"], y=rows["val_accuracy"], mode="lines+markers", name=str(model))
    return _styled(fig, "Training effort: validation accuracy after each epoch", xaxis_title="epoch",
                   yaxis_title="validation accuracy")


def data_requirements(data: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for model, rows in data.groupby("model", sort=False):
        fig.add_scatter(x=rows["data_fraction"], y=rows["val_accuracy_mean"], mode="lines+markers", name=str(model),
                        error_y=dict(type="data", array=rows["val_accuracy_std"].fillna(0)))
    return _styled(fig, "Data requirements: accuracy against the fraction of training data", xaxis_title="data fraction",
                   yaxis_title="validation accuracy", xaxis_type="log")


def cost(data: pd.DataFrame, column: str, label: str) -> go.Figure:
    """Accuracy against a cost (FLOPs or parameters), the Pareto front joined by a line."""
    rows = data.dropna(subset=[column, "val_accuracy_mean"])
    front = rows[stats.pareto_front(rows["val_accuracy_mean"], rows[column])].sort_values(column)
    fig = go.Figure()
    fig.add_scatter(x=rows[column], y=rows["val_accuracy_mean"], mode="markers+text", text=rows["model"],
                    textposition="top center", name="models", marker=dict(size=10),
                    error_y=dict(type="data", array=rows["val_accuracy_std"].fillna(0)))
    fig.add_scatter(x=front[column], y=front["val_accuracy_mean"], mode="lines", name="Pareto front",
                    line=dict(dash="dash", color="firebrick"))
    return _styled(fig, f"Accuracy against {label}", xaxis_title=label, xaxis_type="log", yaxis_title="validation accuracy")


def confusion(d: Diagnostics) -> go.Figure:
    with np.errstate(invalid="ignore", divide="ignore"):
        share = d.confusion / d.confusion.sum(axis=1, keepdims=True)
    fig = go.Figure(go.Heatmap(
        z=share, x=d.classes, y=d.classes, colorscale="Blues", zmin=0, zmax=1, customdata=d.confusion,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} images (%{z:.1%})<extra></extra>",
    ))
    side = max(HEIGHT, 18 * len(d.classes) + 150)
    return _styled(fig, f"Confusion matrix of trial {d.trial} (rows: true class, share of its images)",
                   xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=side)


def per_class(data: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Bar(x=data["class"], y=data["accuracy"]))
    return _styled(fig, "Per-class validation accuracy", yaxis_title="accuracy", yaxis_tickformat=".0%")


def train_vs_val(d: Diagnostics) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=d.curves["epoch"], y=d.curves["train_accuracy"], mode="lines+markers", name="train")
    fig.add_scatter(x=d.curves["epoch"], y=d.curves["val_accuracy"], mode="lines+markers", name="validation")
    return _styled(fig, f"Train against validation accuracy, trial {d.trial}", xaxis_title="epoch", yaxis_title="accuracy")


def grad_norms(d: Diagnostics) -> go.Figure:
    fig = go.Figure()
    for layer, norms in d.grad_norms.items():
        fig.add_scatter(y=norms, mode="lines", name=layer, line=dict(width=1))
    return _styled(fig, f"Gradient norm per layer over the first epoch, trial {d.trial}", xaxis_title="step",
                   yaxis_title="gradient norm", yaxis_type="log")
