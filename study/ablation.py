"""Grids of variants: ablation designs over components, and comparisons over listed settings.

Optuna has grid samplers but no notion of an ablation or of seed repetition (optuna#433), so the
design lives here: one trial per (variant, seed), the cells enqueued as fixed trials of one study,
which makes re-running fill only what is missing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from study.config import Config
from study.errors import UserError
from study.space import Space

TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class Variant:
    name: str
    on: tuple[str, ...]  # components at their full value
    settings: dict[str, Any]


def _variant_name(on: list[str], names: list[str], design: str) -> str:
    if design == "one_out":
        return "full" if len(on) == len(names) else f"no {next(n for n in names if n not in on)}"
    if design == "add_one":
        return "bare" if not on else f"only {on[0]}"
    return "full" if len(on) == len(names) else "+".join(on) or "bare"


def variants(space: Space, fixed: dict[str, Any] | None = None) -> list[Variant]:
    """one_out: full + each component removed; add_one: bare + each added; factorial: all 2^k.

    A comparison trains every combination of its `compare` values; a --set value narrows its axis.
    """
    if space.compare:
        axes = {k: (fixed[k],) if fixed and k in fixed else v for k, v in space.compare.items()}
        combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        return [Variant(" ".join(f"{k}={v}" for k, v in c.items()), (), c) for c in combos]
    names = [c.name for c in space.components]
    if space.design == "one_out":
        combos = [names] + [[n for n in names if n != left_out] for left_out in names]
    elif space.design == "add_one":
        combos = [[]] + [[n] for n in names]
    else:
        combos = [[n for n, on in zip(names, bits) if on] for bits in itertools.product((True, False), repeat=len(names))]
    return [
        Variant(
            _variant_name(on, names, space.design), tuple(on),
            {c.setting: c.full if c.name in on else c.ablated for c in space.components},
        )
        for on in combos
    ]


def reference_variant(design: str) -> str:
    """The variant every other one is compared with."""
    return "bare" if design == "add_one" else "full"


def seeds(space: Space, base: int) -> list[int]:
    return list(range(base, base + space.seeds))


def check_fixed(space: Space, fixed: dict[str, Any]) -> None:
    clash = sorted({c.setting for c in space.components} & set(fixed))
    if clash:
        raise UserError(f"--set {', '.join(clash)}: the ablation varies it; drop it or edit the space's components")


def study_attrs(space: Space) -> dict[str, Any]:
    if space.compare:
        return {"seeds": space.seeds, "compare": {k: list(v) for k, v in space.compare.items()}}
    return {
        "design": space.design, "seeds": space.seeds, "reference_variant": reference_variant(space.design),
        "components": {c.name: {"setting": c.setting, "full": c.full, "ablated": c.ablated} for c in space.components},
    }


def _cell(trial: optuna.trial.FrozenTrial) -> tuple[Any, Any]:
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    return params.get("variant"), params.get("seed")


def enqueue_missing(study: optuna.Study, space: Space, fixed: dict[str, Any], base_seed: int) -> int:
    """Enqueue every (variant, seed) cell not already done, running or queued; returns how many."""
    taken = {_cell(t) for t in study.get_trials(deepcopy=False) if t.state in TAKEN}
    missing = [(v.name, s) for v in variants(space, fixed) for s in seeds(space, base_seed) if (v.name, s) not in taken]
    for name, seed in missing:
        study.enqueue_trial({"variant": name, "seed": seed})
    return len(missing)


def cell_config(space: Space, trial: optuna.Trial, fixed: dict[str, Any], base_seed: int) -> Config:
    """The configuration of the trial's cell; records its variant, seed and components as user attributes."""
    by_name = {v.name: v for v in variants(space, fixed)}
    name = trial.suggest_categorical("variant", list(by_name))
    seed = trial.suggest_int("seed", base_seed, base_seed + space.seeds - 1)
    variant = by_name[name]
    config = space.defaults.replace(**{**fixed, **variant.settings, "seed": seed})
    trial.set_user_attr("variant", name)
    trial.set_user_attr("model", config.model)
    if space.components:
        trial.set_user_attr("components_on", list(variant.on))
    return config
