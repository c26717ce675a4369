"""The three kinds of space, each saying what its study trains and how a trial becomes a Config.

- `Search`: the sampler proposes through the space's `suggest`; trial 0 is the space's defaults.
- `Ablation`: components knocked out by a design (one_out, add_one, factorial), each variant x seed.
- `Comparison`: every combination of the listed settings, x seed.

Ablations and comparisons are grids. Optuna has grid samplers but no notion of an ablation or of
seed repetition (optuna#433), so their cells are enqueued as fixed trials of one study, which makes
re-running fill only what is missing. The runner calls these methods and holds no kind of its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from study.config import Config
from study.errors import UserError
from study.store import record
from study.store.states import LIVE

if TYPE_CHECKING:
    from study.spaces.space import Space

class Kind:
    """What every kind answers; `space` is the loaded space file the kind reads its declaration from."""

    name = ""

    def __init__(self, space: Space) -> None:
        self.space = space

    def check_fixed(self, fixed: dict[str, Any]) -> None:
        """Refuse --set values the kind itself varies."""

    def study_attrs(self) -> dict[str, Any]:
        """What the study stores about the kind (record.StudyInfo fields)."""
        return {}

    def created(self, study: optuna.Study, fixed: dict[str, Any]) -> None:
        """Once, when the study is created."""

    def enqueue(self, study: optuna.Study, fixed: dict[str, Any], base_seed: int) -> int | None:
        """On every run: queue the trials the kind fixes in advance; their number, or None when the
        sampler proposes trials and the budget alone says how many."""
        return None

    def config(self, trial: optuna.Trial, fixed: dict[str, Any], base_seed: int) -> Config:
        raise NotImplementedError

    def trials(self) -> int:
        """Trials of a full run (a search's default budget)."""
        return self.space.trials


class Search(Kind):
    name = "search"

    def reference_params(self, fixed: dict[str, Any]) -> dict[str, Any]:
        """The default value of every parameter `suggest` samples: the study's reference trial."""
        probe = optuna.trial.FixedTrial(self.space.defaults.to_dict())
        self.space.suggest(FixingTrial(probe, fixed))
        return probe.params

    def created(self, study: optuna.Study, fixed: dict[str, Any]) -> None:
        study.enqueue_trial(self.reference_params(fixed), user_attrs=record.trial_attrs(reference=True))

    def config(self, trial: Any, fixed: dict[str, Any], base_seed: int = 0) -> Config:
        """Defaults, then --set values, then what suggest samples."""
        sampled = self.space.suggest(FixingTrial(trial, fixed))
        if not isinstance(sampled, dict):
            raise UserError(f"must return a dict of settings, not {type(sampled).__name__}")
        return self.space.defaults.replace(**{**fixed, **sampled})


class FixingTrial:
    """Wraps a trial so that suggest_* returns the --set value for fixed names instead of sampling.

    A fixed setting then never appears among the trial's parameters, so the sampler and the
    importance analyses only see what really varied.
    """

    def __init__(self, trial: Any, fixed: dict[str, Any]) -> None:
        self._trial, self._fixed = trial, fixed

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._trial, attr)
        if not attr.startswith("suggest_"):
            return value

        def suggest(name: str, *args: Any, **kwargs: Any) -> Any:
            return self._fixed[name] if name in self._fixed else value(name, *args, **kwargs)

        return suggest


@dataclass(frozen=True)
class Variant:
    name: str
    on: tuple[str, ...]  # components at their full value
    settings: dict[str, Any]


class Grid(Kind):
    """Every variant x seed, one trial each; the trial's parameters are its variant and seed."""

    def variants(self, fixed: dict[str, Any] | None = None) -> list[Variant]:
        raise NotImplementedError

    def seeds(self, base: int) -> list[int]:
        return list(range(base, base + self.space.seeds))

    def trials(self) -> int:
        return len(self.variants()) * self.space.seeds

    def enqueue(self, study: optuna.Study, fixed: dict[str, Any], base_seed: int) -> int:
        """Enqueue every (variant, seed) cell not already done, running or queued; returns how many
        cells are still to finish (these, and the queued or running ones: retries of interrupted cells)."""
        trials = study.get_trials(deepcopy=False)
        self._check_stored(study.study_name, trials, fixed)
        taken = {_cell(t) for t in trials if t.state in LIVE}
        missing = [(v.name, s) for v in self.variants(fixed) for s in self.seeds(base_seed) if (v.name, s) not in taken]
        for name, seed in missing:
            study.enqueue_trial({"variant": name, "seed": seed})
        return len(missing) + sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)

    def _check_stored(self, name: str, trials: list[optuna.trial.FrozenTrial], fixed: dict[str, Any]) -> None:
        """Refuse a rerun whose cells would train other settings than the stored runs of the same cells:
        one study would then mix two configurations under one variant's name."""
        by_name = {v.name: v for v in self.variants(fixed)}
        for t in trials:
            variant, seed = _cell(t)
            if t.state not in LIVE or variant not in by_name or not record.trial_info(t).config:
                continue
            asked = self.space.defaults.replace(**{**fixed, **by_name[variant].settings, "seed": seed})
            changed = record.config(t).differences(asked)
            if changed:
                settings = ", ".join(f"{k}={v!r} (stored: {record.setting(t, k)!r})" for k, v in sorted(changed.items()))
                raise UserError(f"study {name!r} stored its runs with other settings than this run asks: {settings}; "
                                "pass --study-name to train these in a study of their own")

    def config(self, trial: optuna.Trial, fixed: dict[str, Any], base_seed: int) -> Config:
        """The configuration of the trial's cell; records its variant and components."""
        by_name = {v.name: v for v in self.variants(fixed)}
        name = trial.suggest_categorical("variant", list(by_name))
        seed = trial.suggest_int("seed", base_seed, base_seed + self.space.seeds - 1)
        variant = by_name[name]
        config = self.space.defaults.replace(**{**fixed, **variant.settings, "seed": seed})
        record.write_trial(trial, variant=name, model=config.model, **self._labels(variant))
        return config

    def _labels(self, variant: Variant) -> dict[str, Any]:
        return {}


def _cell(trial: optuna.trial.FrozenTrial) -> tuple[Any, Any]:
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    return params.get("variant"), params.get("seed")


class Ablation(Grid):
    name = "ablation"

    def variants(self, fixed: dict[str, Any] | None = None) -> list[Variant]:
        """one_out: full + each component removed; add_one: bare + each added; factorial: all 2^k."""
        names = [c.name for c in self.space.components]
        if self.space.design == "one_out":
            combos = [names] + [[n for n in names if n != left_out] for left_out in names]
        elif self.space.design == "add_one":
            combos = [[]] + [[n] for n in names]
        else:
            combos = [[n for n, on in zip(names, bits) if on] for bits in itertools.product((True, False), repeat=len(names))]
        return [
            Variant(self._variant_name(on, names), tuple(on),
                    {c.setting: c.full if c.name in on else c.ablated for c in self.space.components})
            for on in combos
        ]

    def _variant_name(self, on: list[str], names: list[str]) -> str:
        if self.space.design == "one_out":
            return "full" if len(on) == len(names) else f"no {next(n for n in names if n not in on)}"
        if self.space.design == "add_one":
            return "bare" if not on else f"only {on[0]}"
        return "full" if len(on) == len(names) else "+".join(on) or "bare"

    def reference_variant(self) -> str:
        """The variant every other one is compared with."""
        return "bare" if self.space.design == "add_one" else "full"

    def check_fixed(self, fixed: dict[str, Any]) -> None:
        clash = sorted({c.setting for c in self.space.components} & set(fixed))
        if clash:
            raise UserError(f"--set {', '.join(clash)}: the ablation varies it; drop it or edit the space's components")

    def study_attrs(self) -> dict[str, Any]:
        components = {c.name: dict(setting=c.setting, full=c.full, ablated=c.ablated) for c in self.space.components}
        return dict(design=self.space.design, reference_variant=self.reference_variant(), components=components)

    def _labels(self, variant: Variant) -> dict[str, Any]:
        return dict(components_on=list(variant.on))


class Comparison(Grid):
    name = "comparison"

    def variants(self, fixed: dict[str, Any] | None = None) -> list[Variant]:
        """Every combination of the `compare` values; a --set value narrows its axis."""
        axes = {k: (fixed[k],) if fixed and k in fixed else v for k, v in self.space.compare.items()}
        combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        return [Variant(" ".join(f"{k}={v}" for k, v in c.items()), (), c) for c in combos]

    def study_attrs(self) -> dict[str, Any]:
        return dict(compare={k: list(v) for k, v in self.space.compare.items()})
