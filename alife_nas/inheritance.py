"""Weight inheritance (ours, ``--inherit-weights``): which trained layers a child starts from.

A NeuralFinder child is made of its parents' layers, so it can start from their trained weights
instead of a fresh initialisation (Large-Scale Evolution lets a child keep its parent's weights).
This module says, per child layer, which parent layer it copies (:class:`Inherit`), and keeps
the weights of the trainings a lattice holds on disk (:class:`WeightsFolder`). The trainer does
the copying (``alife_nas.training``): a layer is copied only when every one of its tensors has
its parent's shape, so a conv whose input channels changed starts fresh, and so does the dense
layer of the head when its input size changed (docs/method.md, "Weight inheritance").

Pure: no torch (files are only listed and removed here).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from alife_nas.genome import Conv, Genome

__all__ = ["Inherit", "WeightPlan", "LayerMap", "request_key", "self_replication_map", "crossover_maps", "mutant_map", "aligned_map",
           "inheritable", "WeightsFolder", "WEIGHTS_DIR"]

#: Per child layer: (parent number, that parent's layer index), or None for a fresh layer.
LayerMap = tuple[tuple[int, int] | None, ...]

#: The run directory's folder of kept weights.
WEIGHTS_DIR = "weights"


@dataclass(frozen=True)
class Inherit:
    """Where a child's trained weights come from.

    ``parents``: per parent, (weights key, genome): the key names the training whose weights the
    parent's cell holds (:func:`request_key`). ``layers``: per child layer, (parent number, parent
    layer) or None. ``head``: the parent whose dense head (hidden and classifier layers) the child
    is offered, or None.
    """

    parents: tuple[tuple[str, str], ...]
    layers: LayerMap
    head: int | None

    @property
    def token(self) -> str:
        """A short fingerprint of the inheritance: part of the child's cache key, since what it
        trains to depends on the weights it starts from, not on its genome alone."""
        text = json.dumps([[key for key, _ in self.parents], list(self.layers), self.head])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WeightPlan:
    """What a training does with weights files (picklable, for a worker): ``sources`` to start
    from, each (file, the parent's genome, (child layer, parent layer) pairs, offer its head?),
    ``save_to``, where its best epoch's weights go (None: nowhere), and ``epochs``, a shorter
    epoch limit for a child that inherits (None: the settings')."""

    sources: tuple[tuple[str, str, tuple[tuple[int, int], ...], bool], ...] = ()
    save_to: str | None = None
    epochs: int | None = None  # train at most this many epochs (an inherited child's shorter budget)


def request_key(genome: Genome | str, inherit: Inherit | None) -> str:
    """The genome part of a training's cache key: the genome, plus the inheritance's fingerprint
    when it starts from inherited weights (a fresh training keeps today's key)."""
    return str(genome) if inherit is None else f"{genome}<{inherit.token}"


def self_replication_map(a: Genome) -> LayerMap:
    """s1 + s1: both copies from s1's layers (the second copy's first conv only where s1 starts and
    ends with the same number of channels; the trainer checks shapes)."""
    return tuple((0, i) for i in range(len(a))) * 2


def crossover_maps(a: Genome, b: Genome, cut_a: int, cut_b: int) -> tuple[tuple[LayerMap, int], ...]:
    """(layers, head parent) of the four crossover children, in ``CROSSOVER_NAMES`` order
    (aH+bT, aH+bH, bH+aH, bH+aT; a is parent 0, b parent 1). The head is offered by the parent
    whose layers end the child."""
    a_head = [(0, i) for i in range(cut_a)]
    a_tail = [(0, i) for i in range(cut_a, len(a))]
    b_head = [(1, i) for i in range(cut_b)]
    b_tail = [(1, i) for i in range(cut_b, len(b))]
    children = (a_head + b_tail, a_head + b_head, b_head + a_head, b_head + a_tail)
    return tuple((tuple(layers), layers[-1][0]) for layers in children)


def mutant_map(winner: Genome) -> LayerMap:
    """A mutant of the winner (one conv's filter count changed): every layer from the winner; the
    changed conv, and the conv after it (its input channels changed), fail the shape check."""
    return tuple((0, i) for i in range(len(winner)))


def aligned_map(parent: Genome, child: Genome) -> LayerMap:
    """A child made from one parent by a layer edit (regularized's mutations: change a filter
    count, insert or remove a conv or a pool): the layers before the edit and after it come from
    the parent's same layers (the longest common start and end); the edited part is fresh."""
    start = 0
    while start < min(len(parent), len(child)) and parent[start] == child[start]:
        start += 1
    end = 0
    while (end < min(len(parent), len(child)) - start
           and parent[len(parent) - 1 - end] == child[len(child) - 1 - end]):
        end += 1
    shift = len(parent) - len(child)
    return tuple((0, i) if i < start else (0, i + shift) if i >= len(child) - end else None
                 for i in range(len(child)))


def _in_channels(genome: Genome, channels: int) -> list[int | None]:
    """The input channels of each conv of ``genome`` on a ``channels``-channel input (None: a pool)."""
    out: list[int | None] = []
    for layer in genome:
        if isinstance(layer, Conv):
            out.append(channels)
            channels = layer.filters
        else:
            out.append(None)
    return out


def inheritable(child: Genome, inherit: Inherit, channels: int, genomes: Sequence[Genome]) -> list[bool]:
    """Which child conv layers get their parent's weights on a ``channels``-channel input: those
    whose parent layer is a conv with the same filter count and the same input channels. (What
    the trainer's shape check decides, written out for tests and docs; pools have no weights.)"""
    ours = _in_channels(child, channels)
    theirs = [_in_channels(g, channels) for g in genomes]
    result = []
    for i, (layer, source) in enumerate(zip(child, inherit.layers)):
        if not isinstance(layer, Conv) or source is None:
            result.append(False)
            continue
        parent, j = source
        other = genomes[parent][j]
        result.append(isinstance(other, Conv) and other.filters == layer.filters and theirs[parent][j] == ours[i])
    return result


class WeightsFolder:
    """The weights of the trainings a search may still inherit from, one file per training under
    RUN/weights, named by a hash of its cache key. Files no cell holds are removed
    (:meth:`keep`), so the folder holds at most one file per cell plus a step's new trainings."""

    def __init__(self, run_dir: str | os.PathLike, digest: str) -> None:
        self.folder = Path(run_dir) / WEIGHTS_DIR
        self.digest = digest

    def path(self, key: str) -> Path:
        """Where the weights of the training with this genome key (:func:`request_key`) are."""
        return self.folder / f"{hashlib.sha256(f'{self.digest}:{key}'.encode()).hexdigest()[:24]}.pt"

    def keep(self, keys: Iterable[str]) -> int:
        """Remove every weights file but those of ``keys``; returns how many were removed."""
        if not self.folder.is_dir():
            return 0
        held = {self.path(key).name for key in keys}
        removed = 0
        for file in self.folder.iterdir():
            if file.name not in held:
                file.unlink(missing_ok=True)  # also a temporary file a killed save left behind
                removed += 1
        return removed

    def size(self) -> tuple[int, int]:
        """(files, bytes) kept."""
        if not self.folder.is_dir():
            return 0, 0
        files = [f for f in self.folder.iterdir() if f.is_file()]
        return len(files), sum(f.stat().st_size for f in files)
