"""Before a run starts: how much of its initial population the size caps would refuse.

A refused genome takes its lattice cell (or population place) with fitness 0 and counts against
the budget, so a search whose initial population is mostly too large for the input is dead
before its first step (the seed's flatten head on large images). :func:`check_initial_population`
draws the run's own initial genomes -- the strategy's ``initialize`` with the run's seed and a
scorer that trains nothing, so exactly the genomes the run will ask for -- and checks each
against the caps with the shape arithmetic alone. ``Search.create`` refuses a run when more than
``REFUSE_ABOVE`` of them would be refused, unless forced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.contract import EvalRequest, init_keywords
from alife_nas.genome import Genome, one_line, shorten
from alife_nas.strategies import STRATEGIES

__all__ = ["REFUSE_ABOVE", "Feasibility", "initial_genomes", "check_init_genomes_fit", "check_initial_population"]

#: A run is refused at creation when more than this share of its initial genomes would be
#: refused for size (a quarter: 4 of a 4×4 lattice's 16 cells, 20 of a 9×9 lattice's 81).
REFUSE_ABOVE = 0.25

#: What helps when too much is refused: the options named in the refusal.
HELPS = "--head gap, --image-size, --max-memory, --max-params, --max-flops or a smaller --filters set"


@dataclass(frozen=True)
class Feasibility:
    """The initial genomes of a run checked against its caps on its input."""

    input_shape: tuple[int, int, int]
    total: int
    refused: int
    example: tuple[str, str] | None  # (genome, reason) of the first refused genome

    @property
    def share(self) -> float:
        return self.refused / self.total if self.total else 0.0

    @property
    def too_much(self) -> bool:
        return self.share > REFUSE_ABOVE

    def line(self) -> str:
        """One line for the user: how many would be refused, and an example why."""
        c, h, w = self.input_shape
        text = (f"initial population: {self.refused} of {self.total} genomes "
                f"({100 * self.share:.0f}%) exceed the size caps on {c}×{h}×{w} input")
        if self.example is not None:
            genome, reason = self.example
            text += f" (e.g. {shorten(genome, 40)}: {reason})"
        return text


class _Recorder:
    """A scorer that trains nothing: it notes each genome asked for and answers a neutral fitness."""

    def __init__(self) -> None:
        self.genomes: list[Genome] = []

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]:
        self.genomes += [r.genome for r in requests if r.sample == 0]
        return [0.5] * len(requests)


def initial_genomes(config: SearchConfig) -> list[Genome]:
    """The genomes the run's initialisation asks to train, in order (repeats included)."""
    recorder = _Recorder()
    STRATEGIES[config.strategy](config.method).initialize(np.random.default_rng(config.seed), recorder,
                                                          **init_keywords(config.init_genomes))
    return recorder.genomes


def check_init_genomes_fit(config: SearchConfig) -> None:
    """A one-line ConfigError when the strategy cannot place the run's known genomes (``init_genomes``:
    more than its lattice has cells or its population members); found by drawing its initial genomes."""
    if config.init_genomes:
        try:
            initial_genomes(config)
        except ValueError as exc:  # the strategy's own refusal, which names the limit
            raise ConfigError(one_line(exc)) from None


def check_initial_population(config: SearchConfig, input_shape: Sequence[int], num_classes: int,
                             train_images: int | None = None) -> Feasibility:
    """How many of the run's initial genomes its caps refuse on ``input_shape`` (no training);
    ``train_images``, when known, bounds the batch as the trainer does."""
    t = config.training
    shape = tuple(int(v) for v in input_shape)
    refused, example = 0, None
    genomes = initial_genomes(config)
    for genome in genomes:  # the trainer's own check, before it builds anything
        reason = t.size_refusal(t.describe(genome, shape, num_classes), train_images)
        if reason:
            refused += 1
            example = example or (str(genome), reason)
    return Feasibility(shape, len(genomes), refused, example)  # type: ignore[arg-type]
