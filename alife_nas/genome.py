"""Genomes: an ordered sequence of 3x3 conv layers and 2x2 max-pools, and their text forms.

Two text forms exist. The *compact* form (``32-192-192-M-128-192-M``) is what people type and
read; it is also the canonical key of a genome. The *tuple* form is the NeuralFinder seed's own
(``('init-1', '0.927000', [('conv', [('nb_filter', 32)]), ('maxp', [('pool_size', 2)])])``) and
is read and written so results can be compared with the seed's published tables.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, Union

__all__ = [
    "Conv",
    "MaxPool",
    "Layer",
    "Genome",
    "GenomeParseError",
    "DEFAULT_FILTERS",
    "MAX_FILTERS",
    "MAX_GENOME_LAYERS",
    "MAX_GENOME_TEXT",
    "normalize_filters",
    "ONE_LINE_LIMIT",
    "one_line",
    "shorten",
    "shown",
    "parse_genome",
    "parse_tuple_form",
    "format_tuple_form",
]

#: The seed's filter set; it lists 196 but every published model uses 192 (docs/method.md).
DEFAULT_FILTERS: tuple[int, ...] = (16, 32, 64, 96, 128, 192, 224, 256, 512)


#: The largest filter count a search accepts: far above any useful conv, far below overflow.
MAX_FILTERS = 65536

#: The most layers a genome text may have (ten thousand: far beyond any trainable plain CNN).
MAX_GENOME_LAYERS = 10_000

#: The longest genome text read, checked before parsing: room for the tuple form of
#: MAX_GENOME_LAYERS layers, small enough that parsing never needs much memory.
MAX_GENOME_TEXT = 500_000

#: Bracket depth of the tuple form: (name, score, [(kind, [(param, value)])]) is 5 levels.
_TUPLE_DEPTH = 5

#: Text that reads as a compact genome (shortened layer by layer).
_COMPACT_FORM = re.compile(r" ?(?:\d+|[Mm]) ?(?:- ?(?:\d+|[Mm]) ?)+")

#: String literals of the tuple form, skipped when counting bracket depth.
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)


#: How long :func:`one_line` lets an error's text be: every one-line reason is cut here.
ONE_LINE_LIMIT = 300


def one_line(text: object, limit: int | None = ONE_LINE_LIMIT) -> str:
    """``text`` (an exception, a message, any value's ``str``) squeezed onto one line for an error
    message: every run of whitespace (newlines included) becomes one space, and text longer than
    ``limit`` characters is cut, ending in ``...``. ``limit=None`` never cuts: for a whole message
    of the tool's own, not another library's text of unknown length.
    """
    line = " ".join(str(text).split())
    return line if limit is None or len(line) <= limit else line[: max(0, limit - 3)] + "..."


def shorten(text: str, limit: int = 60) -> str:
    """``text`` on one line and at most about ``limit`` characters, for error messages.

    A long genome keeps its first and last layers and says how many it has
    (``16-32-...-M-64 (10,000 layers)``); any other long text keeps its two ends and its length.
    """
    text = one_line(text, None)
    if len(text) <= limit:
        return text
    parts = [part.strip() for part in text.split("-")] if _COMPACT_FORM.fullmatch(text) else []
    room = limit - len("-...-")
    if len(parts) > 2 and len(parts[0]) + len(parts[-1]) <= room:
        head, tail = [parts[0]], [parts[-1]]
        used = len(parts[0]) + len(parts[-1])
        for i in range(1, len(parts) // 2):  # grow both ends alike while they fit
            used += len(parts[i]) + len(parts[-1 - i]) + 2
            if used > room:
                break
            head.append(parts[i])
            tail.insert(0, parts[-1 - i])
        return f"{'-'.join(head)}-...-{'-'.join(tail)} ({len(parts):,} layers)"
    half = max(1, (limit - 3) // 2)
    return f"{text[:half]}...{text[-half:]} ({len(text):,} characters)"


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` shortened like :func:`shorten`: how an error message shows a value it refuses."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        # str() of an int past Python's limit on digits fails: count them from the bits then
        digits = len(str(abs(value))) if value.bit_length() < 10_000 else int(value.bit_length() * 0.30103)
        return f"<a number of {'about ' if value.bit_length() >= 10_000 else ''}{digits:,} digits>"
    try:
        text = repr(value)
    except ValueError:  # a container holding such an int
        return f"<a {type(value).__name__} too large to show>"
    return shorten(text, limit)


def normalize_filters(filters: Sequence[int]) -> tuple[int, ...]:
    """A filter set as the search uses it: distinct whole counts in 1..MAX_FILTERS, ascending.

    Sorting makes the set, not the order it was typed in, decide a run (mutations draw by index).
    Raises ValueError when fewer than two remain: a mutation must be able to change a count.
    """
    if isinstance(filters, (str, bytes, dict)) or not isinstance(filters, Iterable):
        raise ValueError(f"filters must be a list of whole numbers in 1..{MAX_FILTERS}, got {shown(filters)}")
    values = []
    for f in filters:
        # the range is checked before float(): a huge int would overflow it
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 1 <= f <= MAX_FILTERS \
                or not float(f).is_integer():
            raise ValueError(f"filter counts must be whole numbers in 1..{MAX_FILTERS}, got {shown(f)}")
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
                filters = layer.filters
                if not isinstance(filters, int) or isinstance(filters, bool) or not 1 <= filters <= MAX_FILTERS:
                    raise ValueError(f"conv filter count must be a whole number in 1..{MAX_FILTERS}, "
                                     f"got {shown(filters)}")
            elif not isinstance(layer, MaxPool):
                raise TypeError(f"not a layer: {shown(layer)}")
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


def _check_text(text: object) -> str:
    """Genome text that is safe to parse: a string of at most MAX_GENOME_TEXT characters."""
    if not isinstance(text, str):
        raise GenomeParseError(f"genome text must be a string, got {type(text).__name__}")
    if len(text) > MAX_GENOME_TEXT:
        raise GenomeParseError(
            f"genome text of {len(text):,} characters is longer than the {MAX_GENOME_TEXT:,} read: {shorten(text)}"
        )
    return text


def _check_layer_count(count: int, text: str) -> None:
    if count > MAX_GENOME_LAYERS:
        raise GenomeParseError(
            f"genome of {count:,} layers has more than the {MAX_GENOME_LAYERS:,} read: {shorten(text)}"
        )


def parse_compact(text: str) -> Genome:
    """Parse ``32-192-M``: numbers are convs, ``M`` (or ``m``) a max-pool, ``-`` separates.

    Whitespace (any Unicode whitespace, e.g. a non-breaking space) around layers is ignored;
    inside a filter count it is an error.
    """
    text = _check_text(text)
    stripped = text.strip()
    if not stripped:
        raise GenomeParseError("empty genome: expected layers such as '32-64-M'")
    _check_layer_count(stripped.count("-") + 1, stripped)
    offset = len(text) - len(text.lstrip())
    width = len(str(MAX_FILTERS))
    layers: list[Layer] = []
    position = offset
    for number, token in enumerate(stripped.split("-"), start=1):
        where = f"at character {position + 1} (layer {number})"
        tok = token.strip()
        if not tok:
            raise GenomeParseError(f"empty layer {where} in {shown(stripped)}: two '-' in a row or a '-' at an end")
        if tok in ("M", "m"):
            layers.append(MAXPOOL)
        elif tok.isdigit() and tok.isascii():
            digits = tok.lstrip("0")
            if len(digits) > width:  # refused unread: int() of thousands of digits is slow or refused
                raise GenomeParseError(f"conv with a {len(digits):,}-digit filter count {where}: "
                                       f"filter counts must be 1..{MAX_FILTERS}")
            filters = int(tok)
            if not 1 <= filters <= MAX_FILTERS:
                raise GenomeParseError(f"conv with {filters} filters {where}: filter counts must be 1..{MAX_FILTERS}")
            layers.append(Conv(filters))
        else:
            raise GenomeParseError(
                f"unknown layer {shown(tok, 30)} {where}: expected a filter count (e.g. 64) or 'M' for max-pool"
            )
        position += len(token) + 1
    return Genome(tuple(layers))


def _layer_from_tuple(item: object, number: int) -> Layer:
    where = f"layer {number}"
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
        raise GenomeParseError(
            f"{where}: expected ('conv', [('nb_filter', N)]) or ('maxp', [('pool_size', 2)]), got {shown(item)}"
        )
    kind, params = item
    if not isinstance(params, (list, tuple)) or not all(
        isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) for p in params
    ):
        raise GenomeParseError(f"{where}: parameters must be a list of (name, value) pairs, got {shown(params)}")
    values = dict(params)
    if kind == "conv":
        filters = values.get("nb_filter")
        if not isinstance(filters, int) or isinstance(filters, bool) or not 1 <= filters <= MAX_FILTERS:
            raise GenomeParseError(f"{where}: conv needs a whole 'nb_filter' in 1..{MAX_FILTERS}, got {shown(filters)}")
        return Conv(filters)
    if kind == "maxp":
        pool = values.get("pool_size", 2)
        if pool != 2:
            raise GenomeParseError(f"{where}: only pool_size 2 is supported, got {shown(pool)}")
        return MAXPOOL
    raise GenomeParseError(f"{where}: unknown layer kind {shown(kind)}; expected 'conv' or 'maxp'")


def _literal(text: str) -> object:
    """The Python literal the tuple form is, read only after its bracket depth is checked."""
    depth = deepest = 0
    for bracket in re.findall(r"[()\[\]{}]", _STRING_LITERAL.sub("", text)):
        depth += 1 if bracket in "([{" else -1
        deepest = max(deepest, depth)
    if deepest > _TUPLE_DEPTH:
        raise GenomeParseError(f"tuple-form genome nested {deepest:,} brackets deep; the tuple form has {_TUPLE_DEPTH}")
    try:
        return ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError) as exc:
        col = getattr(exc, "offset", None)
        where = f" at character {col}" if col else ""
        reason = shorten(getattr(exc, "msg", exc), 120)
        raise GenomeParseError(f"not a valid tuple-form genome{where}: {reason}") from None
    except (MemoryError, RecursionError):  # the parser's own limit on long chains such as '- - - 1'
        raise GenomeParseError("not a valid tuple-form genome: an expression nested too deeply") from None


def parse_tuple_form(text: str) -> tuple[str | None, float | None, Genome]:
    """Parse the seed's tuple form; returns ``(name, score, genome)``.

    A bare layer list (``[('conv', [('nb_filter', 32)])]``) is accepted too, with no name/score.
    Any Unicode whitespace (e.g. a non-breaking space) counts as a plain space.
    """
    value = _literal(re.sub(r"\s", " ", _check_text(text)).strip())
    name: str | None = None
    score: float | None = None
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], list):
        name_v, score_v, layers_v = value
        if not isinstance(name_v, str):
            raise GenomeParseError(f"tuple form: the name (first field) must be a string, got {shown(name_v)}")
        try:
            score = None if score_v in ("", None) else float(score_v)
        except (TypeError, ValueError, OverflowError):
            score = math.nan
        if score is not None and not math.isfinite(score):
            raise GenomeParseError(
                f"tuple form: the score (second field) must be a finite number, got {shown(score_v)}"
            )
        name = name_v
    elif isinstance(value, list):
        layers_v = value
    else:
        raise GenomeParseError("tuple form must be (name, score, [layers...]) or a list of layers")
    if not layers_v:
        raise GenomeParseError("tuple form: empty layer list")
    _check_layer_count(len(layers_v), text)
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
    """Parse either text form (the tuple form starts with ``(`` or ``[``); limits and whitespace
    rules in docs/running.md, "Limits on input"."""
    if isinstance(text, str) and text.lstrip()[:1] in ("(", "["):
        return parse_tuple_form(text)[2]
    return parse_compact(text)
