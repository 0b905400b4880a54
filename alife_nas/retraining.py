"""Re-train an architecture and report its test accuracy: one policy for every command.

``alife-nas train``, ``export --retrain`` and ``compare --retrain`` all call :func:`retrain`, so
their numbers mean the same thing. The policy is the search's own recipe, so a re-training is
a fresh sample of the very measurement the search made:

* data: the search's data set and validation split (``data`` section of its config); the
  network trains on the training split, the validation split picks the best epoch, the test
  split (never seen by the search) is measured once per training;
* training: the search's settings (preset and overrides), early stopping included;
* seeds: ``0, 1, ..., K-1`` (``seeds=K``): fixed, so the same architecture under the same
  config always gets the same number, whatever run or rank it came from;
* reported: the mean test accuracy over the K trainings, measured with the weights of each
  training's best validation epoch; a failed training counts as 0 (as it did in the search);
* kept (``keep_weights``): the weights of ONE training, the seed with the best validation
  accuracy (the first such seed on a tie) -- chosen by validation, like everything else, never
  by test accuracy -- at its best validation epoch, i.e. the weights whose test accuracy is
  that seed's number in ``test_accuracies``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from alife_nas.config import SearchConfig, continuing_device
from alife_nas.genome import Genome, parse_genome

__all__ = ["Retraining", "retrain", "make_trainer"]


@dataclass(frozen=True)
class Retraining:
    """The re-trainings of one architecture: one :class:`~alife_nas.training.TrainResult` per seed."""

    genome: str
    results: tuple[Any, ...]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.results]

    @property
    def test_accuracy(self) -> float:
        """Mean test accuracy over the seeds; a failed training counts as 0."""
        return sum(_test(r) for r in self.results) / len(self.results)

    @property
    def test_accuracies(self) -> list[float]:
        return [_test(r) for r in self.results]

    @property
    def failures(self) -> list[str]:
        return [f"seed {r.seed}: {r.failure}" for r in self.results if r.failure]

    @property
    def epochs(self) -> list[int]:
        return [r.epochs for r in self.results]

    @property
    def train_time(self) -> float:
        return sum(r.train_time for r in self.results)

    @property
    def best(self) -> Any | None:
        """The training whose weights are kept: best validation accuracy, first seed on a tie; None if all failed."""
        done = [r for r in self.results if not r.failure]
        return max(done, key=lambda r: r.val_accuracy) if done else None  # max keeps the first of equals


def _test(result: Any) -> float:
    return 0.0 if result.failure or result.test_accuracy is None else float(result.test_accuracy)


def make_trainer(config: SearchConfig, *, data: Any = None, device: str | None = None, download: bool = False) -> Any:
    """A :class:`~alife_nas.training.Trainer` with the config's data set and training settings.

    ``device`` defaults to where the config's run would go on (:func:`continuing_device`): a
    CPU run on the CPU, anything else on a GPU when there is one.
    """
    from alife_nas.data import load_data
    from alife_nas.training import Trainer, resolve_device

    if data is None:
        data = load_data(config.data, download)
    return Trainer(data, config.training, resolve_device(device or continuing_device(config.device)))


def retrain(genome: Genome | str, trainer: Any, seeds: int | Sequence[int] = 1,
            on_epoch: Callable[[int, int, float], None] | None = None, keep_weights: bool = False) -> Retraining:
    """Train ``genome`` with each seed (``seeds=K`` means 0..K-1) and measure its test accuracy.

    With ``keep_weights`` the :attr:`Retraining.best` training carries its best epoch's weights
    (``result.weights``); the other seeds' weights are dropped as soon as they lose, so at most
    two sets are held at once.
    """
    genome = parse_genome(genome) if isinstance(genome, str) else genome
    chosen = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not chosen:
        raise ValueError("retrain needs at least one seed")
    results = []
    for s in chosen:
        results.append(trainer.train(genome, seed=s, evaluate_test=True, on_epoch=on_epoch, keep_weights=keep_weights))
        if keep_weights:
            best = Retraining(str(genome), tuple(results)).best
            for r in results:
                if r is not best:
                    r.weights = None
    return Retraining(str(genome), tuple(results))
