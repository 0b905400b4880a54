"""Genomes: an ordered sequence of 3x3 conv layers and 2x2 max-pools, and their text forms.

Two text forms exist. The *compact* form (``32-192-192-M-128-192-M``) is what people type and
read; it is also the canonical key of a genome. The *tuple* form is the NeuralFinder seed's own
(``('init-1', '0.927000', [('conv', [('nb_filter', 32)]), ('maxp', [('pool_size', 2)])])``) and
is read and written so results can be compared with the seed's published tables.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

__all__ = [
    "Conv",
    "MaxPool",
    "Layer",
    "Genome",
    "GenomeParseError",
    "DEFAULT_FILTERS",
    "MAX_FILTERS",
    "normalize_filters",
    "parse_genome",
    "parse_tuple_form",
    "format_tuple_form",
]

#: The seed's filter set; it lists 196 but every published model uses 192 (docs/method.md).
DEFAULT_FILTERS: tuple[int, ...] = (16, 32, 64, 96, 128, 192, 224, 256, 512)


#: The largest filter count a search accepts: far above any useful conv, far below overflow.
MAX_FILTERS = 65536


def normalize_filters(filters: Sequence[int]) -> tuple[int, ...]:
    """A filter set as the search uses it: distinct whole counts in 1..MAX_FILTERS, ascending.

    Sorting makes the set, not the order it was typed in, decide a run (mutations draw by index).
    Raises ValueError when fewer than two remain: a mutation must be able to change a count.
    """
    values = []
    for f in filters:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not float(f).is_integer() or not 1 <= f <= MAX_FILTERS:
            raise ValueError(f"filter counts must be whole numbers in 1..{MAX_FILTERS}, got {f!r}")
        values.append(int(f))
    result = tuple(sorted(set(values)))
    if len(result) < 2:
        raise ValueError("the filter set needs at least two distinct counts (a mutation must be able to change one)")
    return result


class GenomeParseError(ValueError):
    """Malformed genome text. The message names the problem and its position."""


@dataclass(frozen=True, order=True)
class Conv:
    """A 3x3 'same' convolution with ``filters`` output channels, followed by ReLU."""

    filters: int

    def __str__(self) -> str:
        return str(self.filters)


@dataclass(frozen=True, order=True)
class MaxPool:
    """A 2x2 max-pooling with stride 2."""

    def __str__(self) -> str:
        return "M"


Layer = Union[Conv, MaxPool]
MAXPOOL = MaxPool()


@dataclass(frozen=True)
class Genome:
    """An immutable, hashable, non-empty sequence of layers. ``str(genome)`` is its compact form."""

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("a genome needs at least one layer")
        for layer in layers:
            if isinstance(layer, Conv):
                if not isinstance(layer.filters, int) or isinstance(layer.filters, bool) or layer.filters < 1:
                    raise ValueError(f"conv filter count must be a positive integer, got {layer.filters!r}")
            elif not isinstance(layer, MaxPool):
                raise TypeError(f"not a layer: {layer!r}")
        object.__setattr__(self, "layers", layers)

    # --- sequence behaviour -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __add__(self, other: "Genome") -> "Genome":
        return Genome(self.layers + other.layers)

    def __str__(self) -> str:
        return "-".join(str(layer) for layer in self.layers)

    def __repr__(self) -> str:
        return f"Genome('{self}')"

    # --- derived facts ------------------------------------------------------------------
    @property
    def num_convs(self) -> int:
        return sum(isinstance(layer, Conv) for layer in self.layers)

    @property
    def num_pools(self) -> int:
        return len(self.layers) - self.num_convs

    def filters_outside(self, filter_set: Sequence[int]) -> list[int]:
        """Filter counts used by this genome that are not in ``filter_set``."""
        allowed = set(filter_set)
        return sorted({l.filters for l in self.layers if isinstance(l, Conv) and l.filters not in allowed})

    @classmethod
    def from_compact(cls, text: str) -> "Genome":
        return parse_compact(text)


def parse_compact(text: str) -> Genome:
    """Parse ``32-192-M``: numbers are convs, ``M`` (or ``m``) a max-pool, ``-`` separates."""
    if not isinstance(text, str):
        raise GenomeParseError(f"genome text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise GenomeParseError("empty genome: expected layers such as '32-64-M'")
    offset = len(text) - len(text.lstrip())
    layers: list[Layer] = []
    position = offset
    for number, token in enumerate(stripped.split("-"), start=1):
        where = f"at character {position + 1} (layer {number})"
        tok = token.strip()
        if not tok:
            raise GenomeParseError(f"empty layer {where} in {text.strip()!r}: two '-' in a row or a '-' at an end")
        if tok in ("M", "m"):
            layers.append(MAXPOOL)
        elif tok.isdigit() and tok.isascii():
            filters = int(tok)
            if filters < 1:
                raise GenomeParseError(f"conv with {filters} filters {where}: filter counts must be at least 1")
            layers.append(Conv(filters))
        else:
            raise GenomeParseError(
                f"unknown layer {tok!r} {where}: expected a filter count (e.g. 64) or 'M' for max-pool"
            )
        position += len(token) + 1
    return Genome(tuple(layers))


def _layer_from_tuple(item: object, number: int) -> Layer:
    where = f"layer {number}"
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
        raise GenomeParseError(f"{where}: expected ('conv', [('nb_filter', N)]) or ('maxp', [('pool_size', 2)]), got {item!r}")
    kind, params = item
    if not isinstance(params, (list, tuple)) or not all(
        isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) for p in params
    ):
        raise GenomeParseError(f"{where}: parameters must be a list of (name, value) pairs, got {params!r}")
    values = dict(params)
    if kind == "conv":
        filters = values.get("nb_filter")
        if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
            raise GenomeParseError(f"{where}: conv needs a positive integer 'nb_filter', got {filters!r}")
        return Conv(filters)
    if kind == "maxp":
        pool = values.get("pool_size", 2)
        if pool != 2:
            raise GenomeParseError(f"{where}: only pool_size 2 is supported, got {pool!r}")
        return MAXPOOL
    raise GenomeParseError(f"{where}: unknown layer kind {kind!r}; expected 'conv' or 'maxp'")


def parse_tuple_form(text: str) -> tuple[str | None, float | None, Genome]:
    """Parse the seed's tuple form; returns ``(name, score, genome)``.

    A bare layer list (``[('conv', [('nb_filter', 32)])]``) is accepted too, with no name/score.
    """
    try:
        value = ast.literal_eval(text.strip())
    except (SyntaxError, ValueError) as exc:
        col = getattr(exc, "offset", None)
        where = f" at character {col}" if col else ""
        raise GenomeParseError(f"not a valid tuple-form genome{where}: {getattr(exc, 'msg', exc)}") from None
    name: str | None = None
    score: float | None = None
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], list):
        name_v, score_v, layers_v = value
        if not isinstance(name_v, str):
            raise GenomeParseError(f"tuple form: the name (first field) must be a string, got {name_v!r}")
        try:
            score = None if score_v in ("", None) else float(score_v)
        except (TypeError, ValueError):
            raise GenomeParseError(f"tuple form: the score (second field) must be a number, got {score_v!r}") from None
        name = name_v
    elif isinstance(value, list):
        layers_v = value
    else:
        raise GenomeParseError("tuple form must be (name, score, [layers...]) or a list of layers")
    if not layers_v:
        raise GenomeParseError("tuple form: empty layer list")
    layers = tuple(_layer_from_tuple(item, n) for n, item in enumerate(layers_v, start=1))
    return name, score, Genome(layers)


def format_tuple_form(genome: Genome, name: str = "model", score: float | None = None) -> str:
    """Write the seed's tuple form; the score is written like the seed's (``'0.927000'``)."""
    parts = []
    for layer in genome:
        if isinstance(layer, Conv):
            parts.append(f"('conv', [('nb_filter', {layer.filters})])")
        else:
            parts.append("('maxp', [('pool_size', 2)])")
    score_text = "" if score is None else f"{score:.6f}"
    return f"({name!r}, {score_text!r}, [{', '.join(parts)}])"


def parse_genome(text: str) -> Genome:
    """Parse either text form (the tuple form starts with ``(`` or ``[``)."""
    if isinstance(text, str) and text.lstrip()[:1] in ("(", "["):
        return parse_tuple_form(text)[2]
    return parse_compact(text)
