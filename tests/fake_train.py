"""A stand-in for `study.engine.train.train` and `study.engine.array.train_array` in tests of what is
stored and reused: no data, no model.

Its accuracy is a function of the configuration (`score`, else a fixed value), given to the end callback
as `train` gives its metrics, so the code under test reads the trial exactly as after real training.
"""

from __future__ import annotations

from typing import Any, Callable

from study.config import Config
from study.engine.results import Callbacks, Member, Metrics


class FakeTrain:
    def __init__(self, score: Callable[[Config], float] | None = None) -> None:
        self.score = score or (lambda config: 0.5)
        self.trained: list[Config] = []

    def __call__(self, config: Config | list[Config], callbacks: Callbacks | None = None, *, test: bool = False,
                 **kwargs: Any) -> Any:
        """As `train(config)`; given a list, as the trial path's `train_array(configs)`: one Member each."""
        if isinstance(config, list):
            ends = [self(c, None, test=test) for c in config]
            if callbacks is not None and callbacks.end is not None:
                for i, metrics in enumerate(ends):
                    callbacks.end(i, metrics)
            return [Member(metrics) for metrics in ends]
        self.trained.append(config)
        value = self.score(config)
        metrics = Metrics(config=config.to_dict(), seed=config.seed, epochs_trained=config.epochs,
                                 val_accuracy=value, test_accuracy=value if test else None)
        if callbacks is not None and callbacks.end is not None:
            callbacks.end(0, metrics)
        return metrics
