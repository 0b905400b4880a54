"""alife_nas: find CNN architectures by artificial-life evolution on a lattice (NeuralFinder).

The core (genomes, operators, lattice, evolution rules) is pure Python + numpy; torch is only
imported by the model, data and training modules, matplotlib only by the picture functions.
"""
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

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "DEFAULT_FILTERS",
    "Conv",
    "Genome",
    "GenomeParseError",
    "MaxPool",
    "format_tuple_form",
    "parse_genome",
    "parse_tuple_form",
]
