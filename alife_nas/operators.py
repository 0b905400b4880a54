"""Genetic operators as small pure functions (docs/method.md, and the baselines' mutations).

Every function that needs randomness takes a ``numpy.random.Generator`` and draws from it in a
fixed, documented order, so a run is reproducible from one seeded generator.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from alife_nas.genome import MAXPOOL, Conv, Genome, MaxPool

__all__ = [
    "self_replicate",
    "crossover",
    "draw_cut",
    "CROSSOVER_NAMES",
    "mutate_filter",
    "random_initial_genome",
    "random_genome",
    "insert_conv",
    "remove_conv",
    "insert_pool",
    "remove_pool",
    "MUTATIONS",
    "mutate_structure",
]

#: Names of the four crossover children, in the order :func:`crossover` returns them.
CROSSOVER_NAMES: tuple[str, ...] = ("aH+bT", "aH+bH", "bH+aH", "bH+aT")


def self_replicate(genome: Genome) -> Genome:
    """s3 = s1 + s1: the whole sequence twice (the seed's block-repetition idea, as in VGG)."""
    return genome + genome


def draw_cut(rng: np.random.Generator, genome: Genome) -> int:
    """A cut point p with 1 <= p <= len: head = first p layers (never empty), tail = the rest."""
    return int(rng.integers(1, len(genome) + 1))


def crossover(a: Genome, b: Genome, cut_a: int, cut_b: int) -> tuple[Genome, Genome, Genome, Genome]:
    """The seed's four children of a = aH|aT and b = bH|bT: aH+bT, aH+bH, bH+aH, bH+aT."""
    if not (1 <= cut_a <= len(a) and 1 <= cut_b <= len(b)):
        raise ValueError(f"cut points must be in 1..len: got {cut_a} for {a}, {cut_b} for {b}")
    a_head, a_tail = a.layers[:cut_a], a.layers[cut_a:]
    b_head, b_tail = b.layers[:cut_b], b.layers[cut_b:]
    return (
        Genome(a_head + b_tail),
        Genome(a_head + b_head),
        Genome(b_head + a_head),
        Genome(b_head + a_tail),
    )


def _other_filter(rng: np.random.Generator, current: int, filters: Sequence[int]) -> int:
    choices = [f for f in filters if f != current]
    if not choices:
        raise ValueError(f"filter set {tuple(filters)} has no value other than {current}")
    return int(choices[int(rng.integers(len(choices)))])


def mutate_filter(rng: np.random.Generator, genome: Genome, filters: Sequence[int]) -> tuple[Genome, int]:
    """Single-point mutation; returns (mutant, point).

    Draws the point uniformly; a max-pool point leaves the genome unchanged (as in the seed), a
    conv point gets a filter count drawn uniformly from the set minus its current count.
    """
    point = int(rng.integers(len(genome)))
    layer = genome[point]
    if isinstance(layer, MaxPool):
        return genome, point
    new = Conv(_other_filter(rng, layer.filters, filters))
    return Genome(genome.layers[:point] + (new,) + genome.layers[point + 1 :]), point


def random_initial_genome(rng: np.random.Generator, filters: Sequence[int], conv_prob: float = 0.7) -> Genome:
    """A one-layer seed genome: ``conv(f)`` with probability ``conv_prob``, else ``f-M``.

    A max-pool straight on the input is poor, so a pool cell gets a random conv in front of it.
    Draw order: one uniform (conv or pool), then one filter index.
    """
    is_conv = rng.random() < conv_prob
    conv = Conv(int(filters[int(rng.integers(len(filters)))]))
    return Genome((conv,)) if is_conv else Genome((conv, MAXPOOL))


def random_genome(
    rng: np.random.Generator,
    filters: Sequence[int],
    max_layers: int = 12,
    pool_prob: float = 0.25,
) -> Genome:
    """A random genome of random length 1..max_layers for random search.

    The first layer is always a conv (as in the lattice's initialisation); later layers are a
    max-pool with probability ``pool_prob``, else a conv with a uniform filter count.
    """
    length = int(rng.integers(1, max_layers + 1))
    layers = [Conv(int(filters[int(rng.integers(len(filters)))]))]
    for _ in range(length - 1):
        if rng.random() < pool_prob:
            layers.append(MAXPOOL)
        else:
            layers.append(Conv(int(filters[int(rng.integers(len(filters)))])))
    return Genome(tuple(layers))


# --- Large-Scale Evolution style mutations that fit our genome (used by `regularized`) ----------
def insert_conv(rng: np.random.Generator, genome: Genome, filters: Sequence[int]) -> Genome:
    """Insert a conv with a uniform filter count at a uniform position 0..len."""
    at = int(rng.integers(len(genome) + 1))
    new = Conv(int(filters[int(rng.integers(len(filters)))]))
    return Genome(genome.layers[:at] + (new,) + genome.layers[at:])


def insert_pool(rng: np.random.Generator, genome: Genome) -> Genome:
    """Insert a max-pool at a uniform position 1..len (never in front of the first layer)."""
    at = int(rng.integers(1, len(genome) + 1))
    return Genome(genome.layers[:at] + (MAXPOOL,) + genome.layers[at:])


def _remove_kind(rng: np.random.Generator, genome: Genome, kind: type) -> Genome | None:
    where = [i for i, layer in enumerate(genome) if isinstance(layer, kind)]
    if not where or len(genome) == 1:
        return None
    at = where[int(rng.integers(len(where)))]
    return Genome(genome.layers[:at] + genome.layers[at + 1 :])


def remove_conv(rng: np.random.Generator, genome: Genome) -> Genome | None:
    """Remove a uniformly chosen conv; None when there is none or it would empty the genome."""
    return _remove_kind(rng, genome, Conv)


def remove_pool(rng: np.random.Generator, genome: Genome) -> Genome | None:
    """Remove a uniformly chosen max-pool; None when there is none or it would empty the genome."""
    return _remove_kind(rng, genome, MaxPool)


#: Large-Scale Evolution's layer edits that make sense for a plain conv/pool sequence.
MUTATIONS: tuple[str, ...] = ("filter", "insert-conv", "remove-conv", "insert-pool", "remove-pool")


def mutate_structure(rng: np.random.Generator, genome: Genome, filters: tuple[int, ...]) -> tuple[Genome, str]:
    """Apply one uniformly drawn mutation that changes ``genome``; returns (child, mutation name).

    Mutations that cannot apply (no pool to remove, a max-pool picked for a filter change, ...)
    are redrawn, so the child always differs from its parent.
    """
    while True:
        name = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
        if name == "filter":
            child: Genome | None = mutate_filter(rng, genome, filters)[0]
        elif name == "insert-conv":
            child = insert_conv(rng, genome, filters)
        elif name == "remove-conv":
            child = remove_conv(rng, genome)
        elif name == "insert-pool":
            child = insert_pool(rng, genome)
        else:
            child = remove_pool(rng, genome)
        if child is not None and child != genome:
            return child, name
