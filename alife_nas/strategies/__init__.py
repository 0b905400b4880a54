"""Search strategies over the same genomes, trainer, cache and run store.

:data:`STRATEGIES` is the registry of strategies by name (an :class:`~alife_nas.registry.Registry`):
the built-ins below, plus every strategy a package declares in the ``alife_nas.strategies``
entry-point group (read on the first lookup of a name that is not built in, or when the names
are listed; docs/architecture.md). A strategy is a class with ``name``, ``Options`` and the
methods of :class:`~alife_nas.contract.Strategy`; a new built-in is a new module here plus one
entry in :data:`BUILTIN`. Strategies import nothing of the search, the store or torch: they get
options, a generator and an evaluator (:mod:`alife_nas.contract`).
"""
from __future__ import annotations

from alife_nas.contract import check_strategy
from alife_nas.registry import Registry
from alife_nas.strategies.ga import GeneticCNN, GeneticOptions
from alife_nas.strategies.neuralfinder import NeuralFinder
from alife_nas.strategies.random_search import RandomOptions, RandomSearch
from alife_nas.strategies.regularized import RegularizedEvolution, RegularizedOptions
from alife_nas.strategies.rl import ControllerOptions, NasRL

#: The built-in strategies, in the order they are listed.
BUILTIN: tuple[type, ...] = (NeuralFinder, RandomSearch, RegularizedEvolution, GeneticCNN, NasRL)

#: Every strategy by name: the built-ins, then those of the ``alife_nas.strategies`` entry points.
STRATEGIES: Registry[type] = Registry("strategy", "alife_nas.strategies", check=check_strategy)
for _cls in BUILTIN:
    STRATEGIES.register(_cls.name, _cls)
del _cls

__all__ = ["BUILTIN", "NeuralFinder", "RandomSearch", "RandomOptions", "RegularizedEvolution",
           "RegularizedOptions", "GeneticCNN", "GeneticOptions", "NasRL", "ControllerOptions", "STRATEGIES"]
