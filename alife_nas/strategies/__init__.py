"""Search strategies over the same genomes, trainer, cache and run store.

A new strategy is a new module here (a class with ``name``, ``Options`` and the methods of
:class:`Strategy`) plus one entry in :data:`STRATEGIES`. Strategies import nothing of the search,
the store or torch: they get options, a generator and an evaluator.
"""
from __future__ import annotations

from alife_nas.strategies._base import Strategy, would_enter
from alife_nas.strategies.ga import GeneticCNN, GeneticOptions
from alife_nas.strategies.neuralfinder import NeuralFinder
from alife_nas.strategies.random_search import RandomOptions, RandomSearch
from alife_nas.strategies.regularized import RegularizedEvolution, RegularizedOptions
from alife_nas.strategies.rl import ControllerOptions, NasRL

STRATEGIES: dict[str, type] = {
    NeuralFinder.name: NeuralFinder,
    RandomSearch.name: RandomSearch,
    RegularizedEvolution.name: RegularizedEvolution,
    GeneticCNN.name: GeneticCNN,
    NasRL.name: NasRL,
}

__all__ = ["Strategy", "would_enter", "NeuralFinder", "RandomSearch", "RandomOptions", "RegularizedEvolution",
           "RegularizedOptions", "GeneticCNN", "GeneticOptions", "NasRL", "ControllerOptions", "STRATEGIES"]
