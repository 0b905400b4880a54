"""Search strategies over the same genomes, trainer, cache and run store.

A new strategy is a new module here plus one entry in :data:`STRATEGIES`.
"""
from __future__ import annotations

from alife_nas.strategies._base import Strategy
from alife_nas.strategies.neuralfinder import NeuralFinder
from alife_nas.strategies.random_search import RandomSearch
from alife_nas.strategies.regularized import RegularizedEvolution

STRATEGIES: dict[str, type] = {
    NeuralFinder.name: NeuralFinder,
    RandomSearch.name: RandomSearch,
    RegularizedEvolution.name: RegularizedEvolution,
}

__all__ = ["Strategy", "NeuralFinder", "RandomSearch", "RegularizedEvolution", "STRATEGIES"]
