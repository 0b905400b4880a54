"""The Pareto front of accuracy against size: the architectures no other one beats on both.

An architecture is *dominated* when another is at most as large and at least as accurate, and
strictly better on one of the two. What is left is the front a user picks from ("the smallest net
within one point of the best"). Used by ``export --pareto`` and the report page's size plot.

Pure logic: no torch.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["pareto_front"]


def pareto_front(sizes: Sequence[float | None], fitness: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points (smaller size and higher fitness are better), smallest first.

    Points with no size (None) take no part. Of points equal on both, the first one stands for them.
    """
    if len(sizes) != len(fitness):
        raise ValueError(f"sizes and fitness differ in length ({len(sizes)} and {len(fitness)})")
    order = sorted((i for i, s in enumerate(sizes) if s is not None), key=lambda i: (sizes[i], -fitness[i], i))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if fitness[i] > best:  # strictly more accurate than everything at most as large
            front.append(i)
            best = fitness[i]
    return front
