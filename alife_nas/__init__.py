"""alife_nas: find CNN architectures by artificial-life evolution on a lattice (NeuralFinder).

    from alife_nas import Search, SearchConfig
    with Search.create("runs/demo", SearchConfig.from_options(lattice=3, steps=2)) as search:
        search.run()

The names here are the public library (docs/api.md). Importing them loads no torch: the pure
logic (genomes, operators, lattice, rules, strategies, config, store) is Python + numpy; torch is
loaded only when data is loaded or a network is trained, matplotlib only to draw.
"""
from alife_nas.config import (
    ConfigError,
    DataConfig,
    FitnessConfig,
    SearchConfig,
    StopConfig,
)
from alife_nas.evolution import EvolutionConfig
from alife_nas.export import top_architectures
from alife_nas.genome import (
    DEFAULT_FILTERS,
    Conv,
    Genome,
    GenomeParseError,
    MaxPool,
    format_tuple_form,
    parse_genome,
    parse_tuple_form,
)
from alife_nas.retraining import Retraining, make_trainer, retrain
from alife_nas.search import Search, Summary, read_status
from alife_nas.settings import PRESETS, TrainSettings
from alife_nas.shapes import ModelInfo, describe_genome
from alife_nas.store import Evaluation, RunStore, RunStoreError, StepRow
from alife_nas.strategies import (
    STRATEGIES,
    ControllerOptions,
    GeneticOptions,
    RandomOptions,
    RegularizedOptions,
)

__version__ = "0.3.0"

__all__ = [
    "__version__",
    # a search
    "Search",
    "SearchConfig",
    "Summary",
    "StopConfig",
    "DataConfig",
    "TrainSettings",
    "PRESETS",
    "EvolutionConfig",
    "RandomOptions",
    "RegularizedOptions",
    "GeneticOptions",
    "ControllerOptions",
    "FitnessConfig",
    "STRATEGIES",
    "ConfigError",
    # a stored run
    "RunStore",
    "RunStoreError",
    "Evaluation",
    "StepRow",
    "read_status",
    "top_architectures",
    # re-training
    "retrain",
    "make_trainer",
    "Retraining",
    # genomes
    "DEFAULT_FILTERS",
    "Conv",
    "MaxPool",
    "Genome",
    "GenomeParseError",
    "parse_genome",
    "parse_tuple_form",
    "format_tuple_form",
    "describe_genome",
    "ModelInfo",
]
