"""The progress bar's time left: estimated from trainings, weighted by what each is expected to cost.

A run's time goes into its trainings, and trainings differ a hundredfold (a ``16`` against a
``512-512`` on an unpooled map), so the estimate counts trainings, not steps, and moves whenever
one finishes, starts or ends an epoch, and with the clock in between:

- a training in flight that has finished ``e`` of its ``E`` epochs needs its pace so far for the
  epochs it has left: ``(elapsed in it) / e × (expected epochs − e)``;
- one still in its first epoch needs its expected duration minus the time it has run: expected
  epochs × the seconds an epoch of its genome is expected to take, from a least-squares line
  ``a + b × FLOPs`` through the finished trainings' seconds per epoch (the FLOPs of the genome on
  the run's input, from the shape arithmetic: ``TrainSettings.describe``);
- a training not yet started (its genome is not even drawn) costs what the finished ones did on
  average;
- the sum is shared by the trainings that run at once (``slots``), and is never less than the
  longest training in flight.

"Expected epochs" is the epoch limit times the share of it the finished trainings used (early
stopping). The finished trainings are the run's, those of earlier sessions included, so a
resumed run has an estimate at once; cache hits and trainings replayed after a restart cost no
time and count as none. With nothing finished yet there is no estimate (``?``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["TimeLeft", "genome_cost"]

#: The finished trainings the per-epoch line is fitted to (the newest).
FIT_WINDOW = 200


def genome_cost(input_shape: tuple[int, int, int], num_classes: int, training: Any) -> Callable[[str], float | None]:
    """Genome text -> FLOPs of one image's forward pass on this input, as the run's
    ``TrainSettings`` build it (None for a genome it cannot read)."""
    from alife_nas.genome import parse_genome

    known: dict[str, float | None] = {}

    def cost(genome: str) -> float | None:
        if genome not in known:
            try:
                known[genome] = float(training.describe(parse_genome(genome), input_shape, num_classes).flops)
            except ValueError:
                known[genome] = None
        return known[genome]

    return cost


@dataclass
class _Flight:
    genome: str
    started: float
    epoch: int = 0
    max_epochs: int = 0
    epoch_at: float = 0.0  # when the last epoch ended


class TimeLeft:
    """Seconds left for a number of trainings still to start plus those in flight (see the module)."""

    def __init__(self, *, slots: int = 1, max_epochs: int | None = None,
                 cost: Callable[[str], float | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = max(1, int(slots))
        self.max_epochs = max_epochs
        self.cost = cost
        self.clock = clock
        self._done: list[tuple[float, int, float | None]] = []  # (seconds, epochs, FLOPs) per finished training
        self._flight: dict[int, _Flight] = {}
        self._line: tuple[float, float] | None = None  # (a, b) of seconds per epoch = a + b * FLOPs
        self._fitted = -1

    # --- what happened ---------------------------------------------------------------------------
    def finished(self, seconds: float | None, epochs: int | None, flops: float | None = None) -> None:
        """A training finished (a new one, or one of the run's earlier sessions)."""
        if seconds is None or not seconds >= 0 or not epochs:
            return  # a failure before its first epoch, or a result without its time: nothing to learn
        self._done.append((float(seconds), int(epochs), None if flops is None else float(flops)))

    def started(self, worker: int, genome: str, max_epochs: int = 0) -> None:
        now = self.clock()
        self._flight[worker] = _Flight(genome, now, 0, max_epochs, now)

    def epoch(self, worker: int, genome: str, epoch: int, max_epochs: int) -> None:
        flight = self._flight.get(worker)
        if flight is None or flight.genome != genome:  # its start was not seen (a bar opened mid-training)
            self.started(worker, genome, max_epochs)
            flight = self._flight[worker]
        flight.epoch, flight.max_epochs, flight.epoch_at = epoch, max_epochs, self.clock()

    def idle(self, worker: int) -> None:
        self._flight.pop(worker, None)

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    # --- the estimate ----------------------------------------------------------------------------
    def mean_training(self) -> float | None:
        """Seconds of an average finished training (what one not yet drawn is expected to take)."""
        if not self._done:
            return None
        return sum(s for s, _, _ in self._done) / len(self._done)

    def _epoch_share(self) -> float:
        """The share of the epoch limit the finished trainings used (early stopping): 1 without a limit."""
        if not self.max_epochs or not self._done:
            return 1.0
        return min(1.0, sum(e for _, e, _ in self._done) / (len(self._done) * self.max_epochs))

    def epoch_seconds(self, genome: str) -> float | None:
        """Expected seconds of one epoch of ``genome``: the fitted line at its FLOPs, or the mean epoch."""
        if not self._done:
            return None
        if self._fitted != len(self._done):
            self._line, self._fitted = self._fit(), len(self._done)
        a, b = self._line if self._line is not None else (None, None)
        flops = self.cost(genome) if self.cost is not None else None
        if a is None or flops is None:
            return sum(s for s, _, _ in self._done) / sum(e for _, e, _ in self._done)
        return a + b * flops

    def _fit(self) -> tuple[float, float] | None:
        """Least squares of seconds per epoch against FLOPs over the newest finished trainings,
        with both coefficients kept non-negative; None without two different FLOPs to fit on."""
        points = [(f, s / e) for s, e, f in self._done[-FIT_WINDOW:] if f is not None]
        if len({f for f, _ in points}) < 2:
            return None
        n = len(points)
        mean_f = sum(f for f, _ in points) / n
        mean_s = sum(s for _, s in points) / n
        var = sum((f - mean_f) ** 2 for f, _ in points)
        b = sum((f - mean_f) * (s - mean_s) for f, s in points) / var
        a = mean_s - b * mean_f
        if b < 0:  # slower for smaller networks: noise; the mean epoch then
            return mean_s, 0.0
        if a < 0:  # a line through the origin instead
            return 0.0, sum(s for _, s in points) / sum(f for f, _ in points)
        return a, b

    def flight_left(self, flight: _Flight, now: float) -> float | None:
        """Seconds one training in flight still needs (see the module)."""
        limit = flight.max_epochs or self.max_epochs or 0
        expected = self._epoch_share() * limit if limit else None
        if flight.epoch >= 1:
            if expected is None:
                return None
            pace = (flight.epoch_at - flight.started) / flight.epoch
            return max(0.0, pace * (expected - flight.epoch) - (now - flight.epoch_at))
        per_epoch = self.epoch_seconds(flight.genome)
        if per_epoch is None:
            return None
        whole = per_epoch * expected if expected is not None else self.mean_training()
        return max(0.0, (whole or 0.0) - (now - flight.started))

    def left(self, to_start: float | None) -> float | None:
        """Seconds until ``to_start`` more trainings (None: unknown) have run, with those in flight;
        None when there is nothing to estimate from yet."""
        if to_start is None:
            return None
        now = self.clock()
        flights = [self.flight_left(f, now) for f in self._flight.values()]
        if any(f is None for f in flights):
            return None
        mean = self.mean_training()
        if to_start > 0 and mean is None:
            return None
        waiting = max(0.0, to_start) * (mean or 0.0)
        return max(max(flights, default=0.0), (sum(flights) + waiting) / self.slots)
