"""Space files: plain Python modules that say what to search.

A space file holds module-level settings (any Config field, e.g. `model = "naivenet"`), a few
study settings (`budget_epochs`, `trials`, `sampler`, `pruner`, `seeds`, and `augmentation`, a named
preset of augmentation settings from study/config.py that the file's own settings override), a
docstring whose first line describes it,
and either `suggest(trial) -> dict`, which samples settings (each Optuna parameter named after the
setting it sets), or `components`, which makes it an ablation space:

    components = {"se": {"model": ("se_resnet18", "resnet18")}, "mixup_alpha": (0.2, 0.0)}
    design = "one_out"   # or "add_one", "factorial"

A component is a setting with its full and ablated value (`name: (full, ablated)`), or, to give it a
readable name, `name: {setting: (full, ablated)}`. Everything is checked when the file loads, so a
typo fails before any training.

A space may build its own model: `def model(config, num_classes)` (or a class named `model`) in the
file, or `model = "mypackage.nets:TinyNet"` (study/engine/models/user.py), with settings of its own, declared
with their defaults in a table that suggest, --set and components then use like built-in ones:

    settings = {"kernel_size": 3, "blocks": 2}
"""

from __future__ import annotations

import dataclasses
import runpy
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna

from study.config import AUGMENTATION_PRESETS as PRESETS
from study.config import DECLARED, NAMES, Config, coerce
from study.errors import UserError
from study.samplers import registry
from study.spaces import kinds
from study.store.vocabulary import Design

DESIGNS = tuple(d.value for d in Design)
REQUIRED = ("model", "dataset")  # what every space must say explicitly
OWN_SETTINGS = "settings"  # the name of a space's table of its own settings
STUDY_SETTINGS = {"trials": int, "sampler": str, "pruner": str, "seeds": int, "design": str, "components": dict,
                  "compare": dict, "needs": tuple, "budget_epochs": int, "augmentation": str, "fuse": int}
NEEDS = ("cuda", "full_data")
SUMMARY_CHARS = 200  # of the docstring's first line, where it is listed


@dataclass(frozen=True)
class Space:
    """A loaded space file: its defaults, what a faithful run needs, and its kind with the kind's own
    settings (kinds.Search, kinds.Ablation or kinds.Comparison)."""

    name: str
    path: Path
    description: str
    defaults: Config
    kind: kinds.Kind
    needs: tuple[str, ...] = ()  # "cuda", "full_data": what a faithful run requires
    fuse: int | None = None  # trials per fused array (study/search/arrays.py); None: chosen by device and resolution

    def bind(self, fixed: dict[str, Any] | None = None, seed: int = 0) -> kinds.Plan:
        """The space bound to one run's --set values and base seed."""
        return self.kind.bind(self, fixed or {}, seed)

    @property
    def summary(self) -> str:
        first = self.description.strip().splitlines()[0] if self.description.strip() else self.name
        return first if len(first) <= SUMMARY_CHARS else first[:SUMMARY_CHARS] + "..."

    def __reduce__(self) -> tuple[Any, ...]:
        # suggest() lives in the space file's namespace, which a spawned worker cannot import: the
        # space travels as its path, is loaded there once, and keeps in-memory changes (a bench's pruner)
        changes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.kind, kinds.Search):
            changes["kind"] = dataclasses.replace(self.kind, suggest=None)
        return (_reloaded, (self.path, changes))


def _reloaded(path: Path, changes: dict[str, Any]) -> Space:
    space = load(path)
    if isinstance(changes["kind"], kinds.Search):
        changes["kind"] = dataclasses.replace(changes["kind"], suggest=getattr(space.kind, "suggest", None))
    return dataclasses.replace(space, **changes)


def _choice(path: Path, name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise UserError(f"{path}: {name}={value!r} is not supported; choose one of: {', '.join(options)}")
    return value


def load(path: str | Path) -> Space:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"space file {path} not found; list the available ones with `python -m study spaces`")
    try:
        namespace = runpy.run_path(str(path), run_name=f"space_{path.stem}")
    except SyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: syntax error: {exc.msg}; fix the space file") from None
    except Exception as exc:
        raise UserError(f"{path} failed to load: {type(exc).__name__}: {exc}") from None
    settings, study = _sorted_out(path, namespace)
    try:
        defaults = Config(**settings)
        _check_model(defaults.model)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    _check_study_settings(path, study)
    components = _components(path, study.pop("components", {}), defaults)
    compare = _compare(path, study.pop("compare", {}), defaults)
    if sum(map(bool, (components, compare, namespace.get("suggest")))) > 1:
        raise UserError(f"{path}: a space either searches (suggest), ablates (components) or compares (compare); "
                        "split it into several files")
    space = Space(name=path.stem, path=path, description=namespace.get("__doc__") or "", defaults=defaults,
                  kind=_kind(study, namespace.get("suggest"), components, compare),
                  needs=study.get("needs", ()), fuse=study.get("fuse"))
    _check_suggest(space)
    return space


def _kind(study: dict[str, Any], suggest: Callable[[Any], dict[str, Any]] | None,
          components: tuple[kinds.Component, ...], compare: dict[str, tuple[Any, ...]]) -> kinds.Kind:
    """The kind the file declares, with the study settings it holds; those it does not hold (a grid's
    trials, a search's design) mean nothing to it and are left out."""
    if components:
        kind, own = kinds.Ablation, dict(components=components)
    elif compare:
        kind, own = kinds.Comparison, dict(compare=compare)
    else:
        kind, own = kinds.Search, dict(suggest=suggest)
    held = {f.name for f in dataclasses.fields(kind)}
    return kind(**own, **{k: v for k, v in study.items() if k in held and k not in own})


def _sorted_out(path: Path, namespace: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The file's names as (Config settings, with its augmentation preset under them; study settings)."""
    preset = namespace.get("augmentation", "seed")
    if preset not in PRESETS:
        raise UserError(f"{path}: augmentation={preset!r} is not a preset; choose one of: {', '.join(PRESETS)}")
    settings: dict[str, Any] = dict(PRESETS[preset])
    settings[DECLARED] = _declared(path, namespace.get(OWN_SETTINGS, {}))
    study: dict[str, Any] = {}
    for key, value in namespace.items():
        if key == "model" and callable(value) and getattr(value, "__module__", None) == namespace.get("__name__"):
            settings[key] = f"{path}:{key}"  # the file's own model: built from the file wherever it trains
            continue
        if key.startswith("_") or key in ("suggest", OWN_SETTINGS) or isinstance(value, (types.ModuleType, type)):
            continue
        if callable(value) and getattr(value, "__module__", None) != namespace.get("__name__"):
            continue  # an imported helper, not a setting
        if key in STUDY_SETTINGS:
            if type(value) is not STUDY_SETTINGS[key]:
                raise UserError(f"{path}: {key} must be a {STUDY_SETTINGS[key].__name__}, not {value!r}")
            study[key] = value
        elif key in NAMES:
            settings[key] = coerce(key, value)
        else:
            known = ", ".join([*STUDY_SETTINGS, "suggest", OWN_SETTINGS, *NAMES])
            raise UserError(f"{path}: unknown setting {key!r}; known: {known}; declare a setting of the space's own "
                            f"in {OWN_SETTINGS} = {{{key!r}: ...}}, and name helper functions with a leading _")
    for required in REQUIRED:
        if required not in settings:
            raise UserError(f"{path}: missing required setting {required!r}; add e.g. {required} = {getattr(Config, required)!r}")
    study.pop("augmentation", None)
    return settings, study


def _declared(path: Path, table: Any) -> tuple[tuple[str, Any], ...]:
    """The space's own settings as Config holds them; Config checks each name and value."""
    if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
        raise UserError(f"{path}: {OWN_SETTINGS} must be a dict of setting name -> default value, not {table!r}")
    for name in table:
        if name in STUDY_SETTINGS or name in ("suggest", OWN_SETTINGS):
            raise UserError(f"{path}: {OWN_SETTINGS}[{name!r}]: {name!r} is a study setting; rename the setting")
    return tuple(sorted(table.items()))


def _check_study_settings(path: Path, study: dict[str, Any]) -> None:
    for name in ("trials", "budget_epochs", "seeds", "fuse"):
        if study.get(name, 1) < 1:
            raise UserError(f"{path}: {name}={study[name]} is invalid: it must be >= 1")
    _choice(path, "sampler", study.get("sampler", "tpe"), tuple(registry.SAMPLERS))
    _choice(path, "pruner", study.get("pruner", "hyperband"), tuple(registry.PRUNERS))
    _choice(path, "design", study.get("design", Design.ONE_OUT.value), DESIGNS)
    for need in study.get("needs", ()):
        _choice(path, "needs", need, NEEDS)


def _compare(path: Path, declared: dict[str, Any], defaults: Config) -> dict[str, tuple[Any, ...]]:
    out = {}
    for setting, values in declared.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise UserError(f"{path}: compare[{setting!r}] must be a non-empty list of values, not {values!r}")
        try:
            out[setting] = tuple(coerce(setting, v, defaults.declared_dict()) for v in values)
            for value in out[setting]:
                _check_model(defaults.replace(**{setting: value}).model)
        except UserError as exc:
            raise UserError(f"{path}: compare[{setting!r}]: {exc}") from None
    return out


def _check_model(name: str) -> None:
    from study.engine import models

    models.check(name)


def _components(path: Path, declared: dict[str, Any], defaults: Config) -> tuple[kinds.Component, ...]:
    out = []
    for name, spec in declared.items():
        if isinstance(spec, dict) and len(spec) == 1:
            ((setting, values),) = spec.items()
        else:
            setting, values = name, spec
        if not (isinstance(values, tuple) and len(values) == 2):
            raise UserError(
                f"{path}: component {name!r} must be (full, ablated) or {{setting: (full, ablated)}}, not {spec!r}"
            )
        try:
            full, ablated = (coerce(setting, v, defaults.declared_dict()) for v in values)
            for value in (full, ablated):
                _check_model(defaults.replace(**{setting: value}).model)
        except UserError as exc:
            raise UserError(f"{path}: component {name!r}: {exc}") from None
        out.append(kinds.Component(name, setting, full, ablated))
    return tuple(out)


def _check_suggest(space: Space) -> None:
    """Run suggest once on the defaults: names, ranges and returned settings must all make sense."""
    if not isinstance(space.kind, kinds.Search) or space.kind.suggest is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Optuna warns when a fixed value is outside its range
            plan = space.bind()
            plan.reference_params()
            plan.config(optuna.trial.FixedTrial(space.defaults.to_dict()))
    except UserError as exc:
        raise UserError(f"{space.path}: suggest() {exc}") from None
    except (ValueError, UserWarning) as exc:
        raise UserError(
            f"{space.path}: suggest() does not fit the defaults ({exc}); name each parameter after its "
            "setting and make every range (low <= high) include the setting's default"
        ) from None
    except Exception as exc:  # the space file's own code: any bug in it is the file's, said in one line
        raise UserError(f"{space.path}: suggest() failed on the defaults ({type(exc).__name__}: {exc}); "
                        "fix the space file") from None
