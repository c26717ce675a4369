"""Model registry: `build(config, num_classes)` for every model a space may name."""

from __future__ import annotations

from typing import Callable

from torch import nn

from study.config import Config
from study.errors import UserError

Builder = Callable[[Config, int], nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    return sorted(_BUILDERS)


def build(config: Config, num_classes: int) -> nn.Module:
    if config.model not in _BUILDERS:
        raise UserError(f"unknown model {config.model!r}; choose one of: {', '.join(names())}")
    return _BUILDERS[config.model](config, num_classes)


from study.models import cnn, naivenet, reference  # noqa: E402,F401  (they register themselves)
