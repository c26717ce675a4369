"""The user's own models: a function or class in a space file, or one imported from the user's package.

A model setting that holds a colon names one: `"path/to/space.py:model"` (what a space file that
defines `def model(config, num_classes)` stores) or `"mypackage.nets:TinyNet"`. Its builder is called
as `builder(config, num_classes)` when it takes a `config` parameter, else with the keyword arguments it
accepts, each filled from the setting of that name (built-in or the space's own) or `num_classes`.
The setting travels as text, so a spawned worker or a later `final` run rebuilds the same model.

Whatever the user's code does wrong (raises, returns no module, returns the wrong shape) is a
UserError in one line that names the model.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import runpy
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from study.config import Config
from study.errors import UserError

CHECK_BATCH = 2  # images of the forward pass that checks a built model's output


def is_user_model(name: str) -> bool:
    return ":" in name


def builder(name: str) -> Callable[..., Any]:
    """The function or class `name` ("file.py:attr" or "package.module:attr") refers to."""
    where, _, attr = name.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise UserError(f"model {name!r}: file {where} not found; fix the path before the colon")
        namespace = _file_namespace(str(path.resolve()), path.stat().st_mtime_ns)
    else:
        try:
            namespace = vars(importlib.import_module(where))
        except Exception as exc:
            raise UserError(f"model {name!r}: module {where!r} does not import ({type(exc).__name__}: {exc}); "
                            "install the package or run from the folder that holds it") from None
    found = namespace.get(attr)
    if not callable(found):
        raise UserError(f"model {name!r}: {where} has no function or class {attr!r}")
    return found


@functools.lru_cache(maxsize=16)
def _file_namespace(path: str, mtime_ns: int) -> dict[str, Any]:
    """A space file's names, run once per process (and again when the file changes)."""
    try:
        return runpy.run_path(path, run_name=f"space_{Path(path).stem}")
    except Exception as exc:
        raise UserError(f"{path} failed to load: {type(exc).__name__}: {exc}") from None


def _arguments(fn: Callable[..., Any], name: str, config: Config, num_classes: int) -> dict[str, Any]:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {"config": config, "num_classes": num_classes}
    if "config" in parameters:
        return {"config": config, **({"num_classes": num_classes} if "num_classes" in parameters else {})}
    settings = {**config.to_dict(), "num_classes": num_classes}
    out = {}
    for p in parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in settings and p.kind is not p.POSITIONAL_ONLY:
            out[p.name] = settings[p.name]
        elif p.default is p.empty:
            raise UserError(f"model {name!r} takes {p.name!r}, which is no setting; take (config, num_classes), "
                            f"or declare it in the space's settings = {{{p.name!r}: ...}}")
    return out


def build(config: Config, num_classes: int) -> nn.Module:
    """The user's model for `config`; its failures are one-line UserErrors naming it."""
    fn = builder(config.model)
    kwargs = _arguments(fn, config.model, config, num_classes)
    try:
        model = fn(**kwargs)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model {config.model!r} raised {type(exc).__name__}: {exc}; fix the model") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model {config.model!r} returned a {type(model).__name__}, not a torch.nn.Module; "
                        "return the network")
    return model


def check_output(model: nn.Module, config: Config, num_classes: int, image_channels: int = 3) -> None:
    """One forward pass of a small batch at the config's resolution: its output must be
    [batch, num_classes] logits."""
    was_training = model.training
    model.eval()
    x = torch.zeros(CHECK_BATCH, image_channels, config.resolution, config.resolution)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise UserError(f"model {config.model!r} failed on a [{CHECK_BATCH}, 3, {config.resolution}, "
                        f"{config.resolution}] batch ({type(exc).__name__}: {exc}); fix the model or the resolution") from None
    finally:
        model.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (CHECK_BATCH, num_classes):
        raise UserError(f"model {config.model!r} returned {shape} for a batch of {CHECK_BATCH}; it must return "
                        f"({CHECK_BATCH}, {num_classes}) logits for the {num_classes} classes of {config.dataset}")
