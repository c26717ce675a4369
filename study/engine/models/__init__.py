"""Model registry: `build(config, num_classes)` for every model a space may name: a registered one, or
the user's own ("file.py:attr" or "package.module:attr", study/engine/models/user.py)."""

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
    if config.model in _BUILDERS:
        return _BUILDERS[config.model](config, num_classes)
    if user.is_user_model(config.model):
        return user.build(config, num_classes)
    raise UserError(f"unknown model {config.model!r}; choose one of: {', '.join(names())}, "
                    "or your own as 'file.py:function' or 'package.module:Class'")


def check(name: str) -> None:
    """A model setting names a registered model, or a user's model whose file or module loads."""
    if name in _BUILDERS:
        return
    if not user.is_user_model(name):
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(names())}, "
                        "or your own as 'file.py:function' or 'package.module:Class'")
    user.builder(name)


from study.engine.models import cnn, naivenet, reference, user  # noqa: E402,F401  (they register themselves)
