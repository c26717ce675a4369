"""The three kinds of space, each holding its own settings and saying how a trial becomes a Config.

- `Search`: the sampler proposes through the space's `suggest`; trial 0 is the space's defaults.
- `Ablation`: components knocked out by a design (one_out, add_one, factorial), each variant x seed.
- `Comparison`: every combination of the listed settings, x seed.

A kind is what the space file declares; `Plan` is a space bound to one run's --set values and base
seed (`space.bind(fixed, seed)`), which the runner asks for the study's first trials, the trials to
queue and each trial's Config. Ablations and comparisons are grids. Optuna has grid samplers but no
notion of an ablation or of seed repetition (optuna#433), so their cells are enqueued as fixed trials
of one study, which makes re-running fill only what is missing. The runner holds no kind of its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import optuna

from study.config import Config
from study.errors import UserError
from study.store import record
from study.store.states import LIVE
from study.store.vocabulary import Design, StudyKind

if TYPE_CHECKING:
    from study.spaces.space import Space

Cell = tuple[str, int]  # a grid's (variant, seed)


@dataclass(frozen=True)
class Component:
    """One ablation component: a setting, its value in the full model and when knocked out."""

    name: str
    setting: str
    full: Any
    ablated: Any


@dataclass(frozen=True)
class Variant:
    name: str
    on: tuple[str, ...]  # components at their full value
    settings: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Kind:
    """What every kind's study stores and is loaded with: its sampler and pruner (study/samplers/registry.py),
    and how often each run repeats (a grid's cells; the ablation path and test scoring started from it)."""

    name: ClassVar[str] = ""
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seeds: int = 3

    def check_fixed(self, fixed: dict[str, Any]) -> None:
        """Refuse --set values the kind itself varies."""

    def study_attrs(self) -> dict[str, Any]:
        """What the study stores about the kind (record.StudyInfo fields)."""
        return dict(kind=self.name, sampler=self.sampler, pruner=self.pruner, seeds=self.seeds)

    def size(self, epochs: int) -> str:
        """A full run's size, as the list of spaces shows it."""
        raise NotImplementedError

    def bind(self, space: Space, fixed: dict[str, Any], seed: int) -> Plan:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Search(Kind):
    name: ClassVar[str] = StudyKind.SEARCH.value
    suggest: Callable[[Any], dict[str, Any]] | None  # the file's; None where it has none
    trials: int = 30
    budget_epochs: int | None = None  # a compute budget (study.search.budget): epochs trained by all trials

    def size(self, epochs: int) -> str:
        return f"{self.budget_epochs} ep in all" if self.budget_epochs else f"{self.trials} x {epochs} ep"

    def bind(self, space: Space, fixed: dict[str, Any], seed: int) -> SearchPlan:
        return SearchPlan(space, fixed, seed)


@dataclass(frozen=True, kw_only=True)
class Grid(Kind):
    """Every variant x seed, one trial each; the trial's parameters are its variant and seed."""

    pruner: str = "none"  # every cell trains to the end unless the space asks

    def variants(self, fixed: dict[str, Any] | None = None) -> list[Variant]:
        raise NotImplementedError

    def size(self, epochs: int) -> str:
        return f"{len(self.variants()) * self.seeds} x {epochs} ep"

    def labels(self, variant: Variant) -> dict[str, Any]:
        """What each trial of `variant` stores beside its variant's name (record.TrialInfo fields)."""
        return {}

    def bind(self, space: Space, fixed: dict[str, Any], seed: int) -> GridPlan:
        return GridPlan(space, fixed, seed)


@dataclass(frozen=True, kw_only=True)
class Ablation(Grid):
    name: ClassVar[str] = StudyKind.ABLATION.value
    components: tuple[Component, ...]
    design: str = Design.ONE_OUT.value

    def variants(self, fixed: dict[str, Any] | None = None) -> list[Variant]:
        """one_out: full + each component removed; add_one: bare + each added; factorial: all 2^k."""
        names = [c.name for c in self.components]
        if self.design == Design.ONE_OUT:
            combos = [names] + [[n for n in names if n != left_out] for left_out in names]
        elif self.design == Design.ADD_ONE:
            combos = [[]] + [[n] for n in names]
        else:
            combos = [[n for n, on in zip(names, bits) if on] for bits in itertools.product((True, False), repeat=len(names))]
        return [
            Variant(Design(self.design).variant_name(on, names), tuple(on),
                    {c.setting: c.full if c.name in on else c.ablated for c in self.components})
            for on in combos
        ]

    def reference_variant(self) -> str:
        """The variant every other one is compared with."""
        return Design(self.design).reference_variant()

    def check_fixed(self, fixed: dict[str, Any]) -> None:
        clash = sorted({c.setting for c in self.components} & set(fixed))
        if clash:
            raise UserError(f"--set {', '.join(clash)}: the ablation varies it; drop it or edit the space's components")

    def study_attrs(self) -> dict[str, Any]:
        components = {c.name: dict(setting=c.setting, full=c.full, ablated=c.ablated) for c in self.components}
        return dict(super().study_attrs(), design=self.design, reference_variant=self.reference_variant(),
                    components=components)

    def labels(self, variant: Variant) -> dict[str, Any]:
        return dict(components_on=list(variant.on))


@dataclass(frozen=True, kw_only=True)
class Comparison(Grid):
    name: ClassVar[str] = StudyKind.COMPARISON.value
    compare: dict[str, tuple[Any, ...]]  # the axes: every combination is a variant

    def variants(self, fixed: dict[str, Any] | None = None) -> list[Variant]:
        """Every combination of the `compare` values; a --set value narrows its axis."""
        axes = {k: (fixed[k],) if fixed and k in fixed else v for k, v in self.compare.items()}
        combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        return [Variant(" ".join(f"{k}={v}" for k, v in c.items()), (), c) for c in combos]

    def study_attrs(self) -> dict[str, Any]:
        return dict(super().study_attrs(), compare={k: list(v) for k, v in self.compare.items()})


@dataclass(frozen=True)
class Plan:
    """A space bound to one run: its --set values (`fixed`, which override the space's defaults) and
    base seed, given once; what the runner asks of the space's kind."""

    space: Space
    fixed: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def kind(self) -> Kind:
        return self.space.kind

    @property
    def defaults(self) -> Config:
        """The space's defaults with the --set values."""
        return self.space.defaults.replace(**self.fixed)

    def check_fixed(self) -> None:
        self.kind.check_fixed(self.fixed)

    def created(self, study: optuna.Study) -> None:
        """Once, when the study is created."""

    def enqueue(self, study: optuna.Study) -> frozenset[Cell] | None:
        """On every run: queue the trials the kind fixes in advance; the cells the run is to finish, or
        None when the sampler proposes trials and the budget alone says how many."""
        return None

    def config(self, trial: optuna.Trial) -> Config:
        raise NotImplementedError


class SearchPlan(Plan):
    """A search's run: its kind is a Search."""

    def reference_params(self) -> dict[str, Any]:
        """The default value of every parameter `suggest` samples: the study's reference trial."""
        probe = optuna.trial.FixedTrial(self.space.defaults.to_dict())
        self.kind.suggest(FixingTrial(probe, self.fixed))
        return probe.params

    def created(self, study: optuna.Study) -> None:
        study.enqueue_trial(self.reference_params(), user_attrs=record.trial_attrs(reference=True))

    def config(self, trial: Any) -> Config:
        """Defaults, then --set values, then what suggest samples."""
        sampled = self.kind.suggest(FixingTrial(trial, self.fixed))
        if not isinstance(sampled, dict):
            raise UserError(f"must return a dict of settings, not {type(sampled).__name__}")
        return self.space.defaults.replace(**{**self.fixed, **sampled})


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


class GridPlan(Plan):
    """An ablation's or comparison's run: its kind is a Grid."""

    def variants(self) -> list[Variant]:
        return self.kind.variants(self.fixed)

    def seeds(self, base: int) -> list[int]:
        return list(range(base, base + self.kind.seeds))

    def enqueue(self, study: optuna.Study) -> frozenset[Cell]:
        """Enqueue every (variant, seed) cell not already done, running or queued; returns every cell
        of the run. Nodes that start at once may each queue a cell: the budget (study/search/budget.py) has
        each cell trained once all the same, by the first of its trials (budget.cell_owner)."""
        trials = study.get_trials(deepcopy=False)
        self._check_stored(study.study_name, trials, self.fixed)
        taken = {record.cell(t) for t in trials if t.state in LIVE}
        cells = [(v.name, s) for v in self.variants() for s in self.seeds(self.seed)]
        for name, seed in cells:
            if (name, seed) not in taken:
                study.enqueue_trial({"variant": name, "seed": seed})
        return frozenset(cells)

    def _check_stored(self, name: str, trials: list[optuna.trial.FrozenTrial], fixed: dict[str, Any]) -> None:
        """Refuse a rerun whose cells would train other settings than the stored runs of the same cells:
        one study would then mix two configurations under one variant's name."""
        by_name = {v.name: v for v in self.variants()}
        for t in trials:
            variant, seed = record.cell(t) or (None, None)
            if t.state not in LIVE or variant not in by_name or not record.trial_info(t).config:
                continue
            asked = self.space.defaults.replace(**{**fixed, **by_name[variant].settings, "seed": seed})
            changed = record.config(t).differences(asked)
            if changed:
                settings = ", ".join(f"{k}={v!r} (stored: {record.setting(t, k)!r})" for k, v in sorted(changed.items()))
                raise UserError(f"study {name!r} stored its runs with other settings than this run asks: {settings}; "
                                "pass --study-name to train these in a study of their own")

    def config(self, trial: optuna.Trial) -> Config:
        """The configuration of the trial's cell; records its variant and components."""
        by_name = {v.name: v for v in self.variants()}
        name = trial.suggest_categorical("variant", list(by_name))
        seed = trial.suggest_int("seed", self.seed, self.seed + self.kind.seeds - 1)
        variant = by_name[name]
        config = self.space.defaults.replace(**{**self.fixed, **variant.settings, "seed": seed})
        record.write_trial(trial, variant=name, model=config.model, **self.kind.labels(variant))
        return config


