"""Taking the result away: the K best distinct architectures of a run, in four formats.

``top_architectures`` ranks the run's trainings (best fitness per distinct genome, failures
left out); ``to_json`` / ``to_paper`` / ``to_markdown`` / ``pytorch_source`` write them;
``write_export`` puts them on disk; ``with_retraining`` adds what a re-training
(:mod:`alife_nas.retraining`) measured; ``safe_target`` decides, before any work, whether an
output path may be written (never the run's own files, never through a symbolic link out of
the run directory, an existing file only with ``force``). ``pytorch_source`` with a
:class:`ModelCard` writes the standalone file of a TRAINED network (weights next to it, the
input normalisation, class names, ``load`` / ``predict``); :mod:`alife_nas.model_export` saves
the weights and the ONNX files. Nothing here needs torch or matplotlib.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import pprint
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from alife_nas.evolution import FitnessStats
from alife_nas.files import write_atomically
from alife_nas.genome import (
    Conv,
    Genome,
    format_tuple_form,
    parse_genome,
    parse_tuple_form,
)
from alife_nas.shapes import INITS, PlannedLayer, describe_genome, layer_plan
from alife_nas.store import DB_NAME, LOCK_NAME, Evaluation, rank_key

__all__ = [
    "FORMATS",
    "top_architectures",
    "to_json",
    "to_paper",
    "to_markdown",
    "read_paper",
    "read_json",
    "pytorch_source",
    "pytorch_filename",
    "model_files",
    "ModelCard",
    "model_shape",
    "check_target",
    "safe_target",
    "export_text",
    "write_export",
    "write_architecture",
    "with_retraining",
]

FORMATS = ("json", "paper", "markdown", "pytorch")

#: Files of a run directory that the run store owns: an export never writes over them.
RUN_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME)

#: Keys of an evaluation row copied into an exported row (when the store has them).
_COPIED = (
    "params", "flops", "epochs", "best_epoch", "train_time", "step", "index", "order", "operator",
    "parents", "position", "created_at", "seed", "effective_layers",
)


# --------------------------------------------------------------------------------------------
# ranking
# --------------------------------------------------------------------------------------------
def _usable(ev: Evaluation) -> bool:
    return not ev.failure and math.isfinite(ev.fitness)


def _rank_key(ev: Evaluation) -> tuple:
    """The run store's one rule for "best" (:func:`alife_nas.store.rank_key`), for one training."""
    return rank_key(ev.fitness, ev.params, ev.order, ev.genome)


def top_architectures(evaluations: Iterable[Evaluation], k: int = 15,
                      fitness: Mapping[str, FitnessStats] | None = None) -> list[dict]:
    """The ``k`` best distinct genomes (best fitness per genome; failures left out), ranked 1..k.

    Ties in fitness go to the smaller network (fewer parameters), then to the one found first
    (lower training order): :func:`alife_nas.store.rank_key`, the rule every "best" of a run
    follows (``status``, ``Summary.best_genome``, ``compare``), so rank 1 is always the genome
    they name. ``k`` may exceed what is available.
    ``fitness`` (a run's :meth:`~alife_nas.store.RunStore.genome_fitness`) gives a genome trained
    several times (``--reevaluate``, ``ga``) its mean, by which it is ranked, and the row's
    ``samples`` and ``fitness_range`` ([lowest, highest], None for one training); without it
    each row rests on one training.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    stats = {str(parse_genome(g)): st for g, st in (fitness or {}).items()}
    best: dict[str, Evaluation] = {}
    trained: dict[str, int] = {}
    for ev in evaluations:
        genome = str(parse_genome(ev.genome))  # canonical compact form
        trained[genome] = trained.get(genome, 0) + 1
        if not _usable(ev):
            continue
        candidate = dataclasses.replace(ev, genome=genome)
        if genome in stats:  # the mean of all its trainings, not this one's
            candidate = dataclasses.replace(candidate, fitness=stats[genome].mean)
        if genome not in best or _rank_key(candidate) < _rank_key(best[genome]):
            best[genome] = candidate
    ranked = sorted(best.values(), key=_rank_key)[:k]
    rows: list[dict] = []
    for rank, ev in enumerate(ranked, start=1):
        genome = parse_genome(ev.genome)
        found = ev.to_dict()
        known = stats.get(ev.genome)
        spread = None if known is None else known.spread
        row: dict[str, Any] = {
            "rank": rank,
            "genome": ev.genome,
            "fitness": ev.fitness,
            "convs": genome.num_convs,
            "pools": genome.num_pools,
            "layers": len(genome),
            **{key: found[key] for key in _COPIED},
            "trainings": trained[ev.genome],
            "samples": 1 if known is None else known.samples,
            "fitness_range": None if spread is None else list(spread),
        }
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# text formats
# --------------------------------------------------------------------------------------------
def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON list of objects (rank, genome, fitness, params, flops, epochs, how/when found, ...)."""
    return json.dumps([_json_safe(dict(r)) for r in rows], indent=2) + "\n"


def read_json(text: str) -> list[tuple[int, float, Genome]]:
    """Read ``to_json`` output back as (rank, fitness, genome) triples."""
    return [(int(r["rank"]), float(r["fitness"]), parse_genome(r["genome"])) for r in json.loads(text)]


def to_paper(rows: Sequence[Mapping[str, Any]]) -> str:
    """The seed's tuple form, one architecture per line, named ``rank-1``, ``rank-2``, ..."""
    lines = [format_tuple_form(parse_genome(r["genome"]), f"rank-{r['rank']}", float(r["fitness"])) for r in rows]
    return "".join(line + "\n" for line in lines)


def read_paper(text: str) -> list[tuple[str | None, float | None, Genome]]:
    """Read tuple-form lines (as written by ``to_paper`` or the seed) back; blank lines skipped."""
    return [parse_tuple_form(line) for line in text.splitlines() if line.strip()]


def _human(value: Any) -> str:
    """1234567 -> '1.23M': counts short enough for a table cell."""
    if value is None:
        return "–"
    v = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            q = v / limit
            return f"{q:.2f}{suffix}" if q < 10 else f"{q:.1f}{suffix}" if q < 100 else f"{q:.0f}{suffix}"
    return f"{v:.0f}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}%"


def _found(row: Mapping[str, Any]) -> str:
    step, operator = row.get("step"), row.get("operator")
    parts = []
    if step is not None:
        parts.append("initial lattice" if step == 0 and operator in (None, "init") else f"step {step}")
    if operator and operator != "init":
        parts.append(str(operator))
    return ", ".join(parts) or "–"


def to_markdown(rows: Sequence[Mapping[str, Any]], *, title: str | None = None) -> str:
    """A Markdown table like the seed's top-15 appendix (test accuracy column once re-trained)."""
    with_test = any(r.get("test_accuracy") is not None for r in rows)
    with_samples = any((r.get("samples") or 1) > 1 for r in rows)  # a mean of several trainings somewhere
    head = ["Rank", "Architecture", "Val. acc."] + (["Trainings (range)"] if with_samples else [])
    head += (["Test acc."] if with_test else []) + ["Params", "FLOPs", "Conv", "Pool", "Found"]
    align = ["--:", ":--", "--:"] + (["--:"] if with_samples else []) + (["--:"] if with_test else [])
    align += ["--:", "--:", "--:", "--:", ":--"]
    lines = []
    if title:  # one line, whatever it holds: a newline would start Markdown of its own
        lines += [f"### {' '.join(str(title).split())}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        genome = parse_genome(r["genome"])
        cells = [str(r["rank"]), f"`{genome}`", _pct(r["fitness"])]
        if with_samples:
            spread = r.get("fitness_range")
            cells.append(f"{r.get('samples') or 1}" + (f" ({_pct(spread[0])}–{_pct(spread[1])})" if spread else ""))
        if with_test:
            cells.append(_pct(r.get("test_accuracy")))
        cells += [
            _human(r.get("params")), _human(r.get("flops")), str(genome.num_convs), str(genome.num_pools), _found(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not rows:
        lines.append("| " + " | ".join(["–"] * len(head)) + " |")
    lines += ["", "Architecture: a number is a 3×3 conv (+ReLU) with that many filters, `M` a 2×2 max-pool; every "
              "network ends with flatten → dense 512 + ReLU → dropout 0.5 → dense(classes). FLOPs per image, "
              "2 per multiply-add."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# standalone PyTorch
# --------------------------------------------------------------------------------------------
def pytorch_filename(name: str) -> str:
    """A safe Python module file name for an architecture (``rank-1`` -> ``rank_1.py``)."""
    stem = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "model"
    if stem[0].isdigit():
        stem = "model_" + stem
    return stem + ".py"


def model_files(name: str, fmt: str, *, trained: bool = False) -> list[str]:
    """The files a model export writes for the network ``name``.

    'pytorch': ``NAME.py`` plus, when trained, the weights ``NAME.pt``; 'onnx': ``NAME.onnx``.
    """
    stem = pytorch_filename(name)[:-3]
    if fmt == "onnx":
        return [f"{stem}.onnx"]
    if fmt != "pytorch":
        raise ValueError(f"{fmt!r} is not a model export format; expected pytorch or onnx")
    return [f"{stem}.py"] + ([f"{stem}.pt"] if trained else [])


def _pytorch_layer_lines(step: PlannedLayer) -> list[str]:
    """The ``nn.Sequential`` lines of one planned layer, commented with the map shape it yields."""
    number, (c_in, h_in, w_in), (c, h, w) = step.number, step.in_shape, step.shape
    if step.skipped:
        return [f"            # layer {number} (M) skipped: the map is already {h_in} x {w_in}, a pool would empty it"]
    if isinstance(step.layer, Conv):
        return [
            f"            nn.Conv2d({c_in}, {c}, kernel_size=3, stride=1, padding=1),  # layer {number}: {c} x {h} x {w}",
            "            nn.ReLU(inplace=True),",
        ]
    return [f"            nn.MaxPool2d(kernel_size=2, stride=2),  # layer {number}: -> {c} x {h} x {w}"]


@dataclass(frozen=True)
class ModelCard:
    """What the standalone file of a TRAINED network embeds besides the architecture.

    ``mean`` and ``scale`` are per channel, in 0..255 units, as the trainer normalised:
    ``(image - mean) / scale`` (``scale`` is the training split's std for 'standardize', 255
    for 'center'). ``weights_file`` is the state_dict's file name, next to the .py.
    ``metadata`` is the recipe and what it measured (genome, data set, settings, accuracies,
    seed, ...): plain JSON-like values, written into the file as a Python literal.
    """

    classes: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights_file: str
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def model_shape(info: Mapping[str, Any] | None) -> tuple[tuple[int, int, int], int, list[str] | None]:
    """(input_shape, num_classes, classes) from a run's recorded data set info; ValueError if unusable."""
    if not isinstance(info, Mapping):
        raise ValueError("the run does not record its input shape and classes")
    shape, num_classes, classes = info.get("input_shape"), info.get("num_classes"), info.get("classes")

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(whole(v) for v in shape)):
        raise ValueError(f"the recorded input shape {shape!r} is not three positive whole numbers")
    if not whole(num_classes):
        raise ValueError(f"the recorded number of classes {num_classes!r} is not a positive whole number")
    if classes is not None and not (isinstance(classes, (list, tuple)) and len(classes) == num_classes):
        raise ValueError(f"the recorded class names do not match its {num_classes} classes")
    return (shape[0], shape[1], shape[2]), num_classes, None if classes is None else [str(c) for c in classes]


_ARCHITECTURE_TEXT = """Each number in the genome is a 3x3 conv (stride 1, padding 1, bias) + ReLU, each M a 2x2
max-pool (stride 2); then flatten -> Linear({hidden}) + ReLU -> Dropout(0.5) -> Linear(classes).
The search trained it with an L2 penalty on the classifier's weight. Module names match
alife_nas's builder, so its state_dicts load here."""

_TRAINED_FUNCTIONS = '''

def load(path=None, map_location="cpu") -> Net:
    """The network with the trained weights (default: WEIGHTS next to this file), in eval mode.

    It takes normalised input: ``model(normalize(images))`` gives the logits.
    """
    path = Path(__file__).resolve().with_name(WEIGHTS) if path is None else Path(path)
    model = Net()
    model.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return model.eval()


def _batch(images) -> torch.Tensor:
    """Images as an N x C x H x W tensor (not yet normalised), whatever layout they came in."""
    x = torch.as_tensor(images)
    c, h, w = INPUT_SHAPE
    if x.dim() == 3 and c == 1 and tuple(x.shape[1:]) == (h, w):
        x = x.unsqueeze(1)  # N x H x W grey images
    elif x.dim() == 3:
        x = x.unsqueeze(0)  # one image
    if x.dim() == 4 and tuple(x.shape[1:]) == (c, h, w):
        return x
    if x.dim() == 4 and tuple(x.shape[1:]) == (h, w, c):
        return x.permute(0, 3, 1, 2)
    raise ValueError(f"expected images of shape N x {{c}} x {{h}} x {{w}} or N x {{h}} x {{w}} x {{c}}, got {{tuple(x.shape)}}")


def normalize(images) -> torch.Tensor:
    """Images in 0..255 (uint8, or float in the same units) -> the network's float32 input."""
    x = _batch(images).float()
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    scale = torch.tensor(SCALE, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / scale


_loaded = None


@torch.no_grad()
def logits(images, model=None, batch_size: int = 1024) -> torch.Tensor:
    """The network's output (N x NUM_CLASSES) for images in 0..255; ``model`` defaults to load()."""
    global _loaded
    if model is None:
        if _loaded is None:
            _loaded = load()
        model = _loaded
    model.eval()
    device = next(model.parameters()).device
    x = _batch(images)
    out = [model(normalize(x[i : i + batch_size]).to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, NUM_CLASSES)


def predict_proba(images, model=None) -> torch.Tensor:
    """Class probabilities, N x NUM_CLASSES (column i is CLASSES[i])."""
    return torch.softmax(logits(images, model), 1)


def predict(images, model=None) -> list:
    """The class name of each image (uint8 or float in 0..255; N x C x H x W or N x H x W x C)."""
    return [CLASSES[i] for i in logits(images, model).argmax(1).tolist()]


if __name__ == "__main__":
    net = load()
    count = sum(p.numel() for p in net.parameters())
    test = METADATA.get("test_accuracy")
    print(f"{{GENOME}}: {{count}} parameters, trained weights {{WEIGHTS}}, test accuracy "
          + ("-" if test is None else f"{{test:.4f}}"))
'''

_UNTRAINED_MAIN = '''

if __name__ == "__main__":
    net = build()
    count = sum(p.numel() for p in net.parameters())
    logits = net.eval()(torch.zeros(1, *INPUT_SHAPE))
    print(f"{{GENOME}}: {{count}} parameters, output shape {{tuple(logits.shape)}}")
'''


def _plain(value: Any) -> Any:
    """``value`` as plain data a literal can hold: dicts (str keys), lists, str, int, float, bool, None.

    Anything else (a Path, a numpy number, an object) becomes its ``str``, so no ``repr`` of an
    arbitrary object -- code, once it is in a source file -- can reach a generated file.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _literal(value: Any) -> str:
    """A Python literal for plain JSON-like data (non-finite floats become None).

    Data goes into generated source only through here or :func:`_text_literal`: written as a
    literal, never pasted. The literal is read back with ``ast.literal_eval`` to prove it.
    """
    plain = _plain(value)
    text = pprint.pformat(plain, sort_dicts=False, width=100)
    if ast.literal_eval(text) != plain:  # cannot happen for plain data; a guard, not a branch
        raise ValueError("a value for a generated file does not survive as a Python literal")
    return text


def _text_literal(text: str) -> str:
    """``text`` as a triple-quoted Python string literal that reads like the text itself.

    Used for the generated files' docstrings, which carry user data (data set names, which are
    paths as typed; notes): backslashes, double quotes and every unprintable character (control
    characters, line and paragraph separators, lone surrogates) are escaped, so nothing in the
    text can end the string or change what it means. Read back with ``ast.literal_eval`` to prove it.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])  # \r, \x00, \u2028, \ud800, ...
    literal = '"""' + "".join(out) + '"""'
    if ast.literal_eval(literal) != text:  # the escaping above is complete; this proves it per file
        raise ValueError("a docstring for a generated file does not survive as a Python literal")
    return literal


def pytorch_source(
    genome: Genome | str,
    input_shape: Sequence[int],
    num_classes: int,
    name: str = "model",
    *,
    hidden: int = 512,
    init: str = "glorot",
    fitness: float | None = None,
    note: str | None = None,
    card: ModelCard | None = None,
) -> str:
    """A standalone Python file (torch only, no alife_nas) defining the genome's network.

    Layer names match alife_nas's builder (``features``, ``hidden``, ``dropout``,
    ``classifier``), so a state_dict saved by alife_nas loads into it; layers, parameters and
    FLOPs come from ``alife_nas.shapes``, the arithmetic the builder follows too, so max-pools the
    builder skips (map already below 2 pixels) are skipped here as well. ``init`` picks the weight
    initialisation ``build()`` applies: 'glorot' (Keras' default), 'kaiming' or 'torch'.

    Without ``card`` the file is the architecture only (``build()`` gives untrained weights).
    With a :class:`ModelCard` it is a trained model's file: the weights file next to it,
    ``load(path=None)``, ``predict(images)`` (class names), ``predict_proba``, ``logits`` and
    ``normalize``, with the normalisation, class names and recipe embedded.
    """
    g = parse_genome(genome) if isinstance(genome, str) else genome
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected glorot, kaiming or torch")
    info = describe_genome(g, tuple(input_shape), num_classes, hidden)
    if card is not None and not (len(card.classes) == num_classes and len(card.mean) == len(card.scale) == info.input_shape[0]):
        raise ValueError(f"the model card ({len(card.classes)} classes, {len(card.mean)} channels) does not fit "
                         f"{num_classes} classes and input {info.input_shape}")
    features = "\n".join(line for step in layer_plan(g, info.input_shape) for line in _pytorch_layer_lines(step))
    params, flops = info.params, info.flops
    channels, height, width = info.output_shape
    in_c, in_h, in_w = info.input_shape
    module, filename = pytorch_filename(name)[:-3], pytorch_filename(name)
    found = f"Validation accuracy in the search: {fitness:.4f}.\n" if fitness is not None else ""
    extra = f"{note}\n" if note else ""
    architecture = _ARCHITECTURE_TEXT.format(hidden=hidden)
    if init == "glorot":
        init_body = (
            "    for module in model.modules():\n"
            "        if isinstance(module, (nn.Conv2d, nn.Linear)):\n"
            "            nn.init.xavier_uniform_(module.weight)\n"
            "            nn.init.zeros_(module.bias)\n"
        )
    elif init == "kaiming":
        init_body = (
            "    for module in model.modules():\n"
            "        if isinstance(module, (nn.Conv2d, nn.Linear)):\n"
            "            nn.init.kaiming_normal_(module.weight, nonlinearity=\"relu\")\n"
            "            nn.init.zeros_(module.bias)\n"
        )
    else:
        init_body = "    return None  # PyTorch's default initialisation, as constructed\n"
    size = (f"Input {in_c} x {in_h} x {in_w}, {num_classes} classes: {params:,} parameters,\n"
            f"{flops:,} FLOPs per image (2 per multiply-add).")
    if card is None:
        doc = f'''{name}: the CNN {g} found by alife-nas (NeuralFinder lattice evolution), UNTRAINED.

{found}{size}
{extra}
This file rebuilds the architecture only: build() gives freshly initialised weights. For a
trained network with load() and predict(), use `alife-nas export RUN --retrain --format pytorch`
or `alife-nas train GENOME --save DIR`.

Standalone: needs only PyTorch. {architecture}

    python {filename}      # prints the parameter count
    from {module} import build; model = build()
'''
        imports, constants, tail = "", "", _UNTRAINED_MAIN
    else:
        meta = card.metadata
        def number(key: str) -> float | None:
            value = meta.get(key)
            return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

        recipe = [f"{meta['preset']} preset" if meta.get("preset") else None,
                  f"seed {meta['seed']}" if meta.get("seed") is not None else None]
        measured = []
        if number("val_accuracy") is not None:
            epoch = f" (epoch {meta['best_epoch']} of {meta['epochs']})" if meta.get("best_epoch") else ""
            measured.append(f"validation accuracy {number('val_accuracy'):.4f}{epoch}")
        if number("test_accuracy") is not None:
            measured.append(f"test accuracy {number('test_accuracy'):.4f}")
        # One fact a line, never re-wrapped: the data set name is a path as typed, shown as it is.
        lines = [f"Data set: {meta['dataset']}" if meta.get("dataset") else None,
                 "Trained with " + ", ".join(r for r in recipe if r) + "; the weights of the best validation epoch."
                 if any(recipe) else "The weights of the best validation epoch.",
                 "Measured: " + ", ".join(measured) + "." if measured else None]
        trained = "\n".join(line for line in lines if line)
        doc = f'''{name}: the CNN {g} found by alife-nas (NeuralFinder lattice evolution), TRAINED.

{trained}
{found}{extra}{size}

The trained weights are the state_dict in {card.weights_file}, next to this file (it loads with
torch.load(path, weights_only=True)). Standalone: needs only PyTorch, not alife_nas.

    from {module} import load, predict
    predict(images)   # -> class names; images uint8 (or float) in 0..255, N x C x H x W or N x H x W x C
    model = load()    # the trained network, eval mode; it takes normalize(images)
    python {filename}  # loads the weights, prints a summary

predict(), predict_proba() and logits() normalise as the training did, per channel:
(image - MEAN) / SCALE in 0..255 units. METADATA holds the recipe and what it measured.

{architecture}
'''
        imports = "from pathlib import Path\n\n"
        constants = (
            f"CLASSES = {_literal(list(card.classes))}\n"
            f"MEAN = {tuple(float(v) for v in card.mean)!r}  # per channel, 0..255 units: the training split's mean\n"
            f"SCALE = {tuple(float(v) for v in card.scale)!r}  # per channel divisor: the training split's std, or 255\n"
            f"WEIGHTS = {card.weights_file!r}  # the trained state_dict, next to this file\n"
            f"METADATA = {_literal(dict(meta))}\n"
        )
        tail = _TRAINED_FUNCTIONS
    return f'''#!/usr/bin/env python3
{_text_literal(doc)}
{imports}import torch
from torch import nn

GENOME = {str(g)!r}
INPUT_SHAPE = ({in_c}, {in_h}, {in_w})  # channels, height, width
NUM_CLASSES = {num_classes}
HIDDEN = {hidden}
PARAMS = {params}  # expected parameter count
{constants}

class Net(nn.Module):
    """The genome's layers, then the fixed head."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
{features}
        )
        self.hidden = nn.Linear({channels} * {height} * {width}, HIDDEN)
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(HIDDEN, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        x = self.dropout(torch.relu(self.hidden(x)))
        return self.classifier(x)


def init_weights(model: nn.Module) -> None:
    """The initialisation the search used: {init}."""
{init_body}

def build(num_classes: int = NUM_CLASSES) -> Net:
    """A freshly initialised network (seed torch first for repeatable weights)."""
    model = Net(num_classes)
    init_weights(model)
    return model
''' + tail.format()


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def check_target(fmt: str, out: str | Path) -> None:
    """Refuse an output path of the wrong kind before any work: a folder for 'pytorch', a file otherwise."""
    out = Path(out)
    if fmt == "pytorch":
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} is a file; the pytorch export writes one .py per architecture into a folder")
    elif out.is_dir():
        raise ValueError(f"{out} is a folder; give a file name for the {fmt} export")


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def safe_target(out: str | Path, run_dir: str | Path | None, *, folder: bool, files: Sequence[str] = (),
                force: bool = False) -> Path:
    """The real path to write an export of ``run_dir`` (None: of no run) to, or a one-line ValueError.

    ``folder``: ``out`` is a folder that receives ``files``; otherwise ``out`` is the file.
    Refused: an empty path; a file where a folder is wanted and the reverse; the run directory
    itself as the folder; a path inside the run directory that a symbolic link leads out of it;
    the run's own files (:data:`RUN_FILES`, also through a link), even with ``force``; a file
    that exists, unless ``force``. Checked before any work, so a mistake costs no re-training.
    The path returned has its links resolved: write there (:func:`alife_nas.files.write_atomically`).
    """
    text = str(out)
    if not text.strip():
        raise ValueError(f"{text!r} is an empty path: give a " + ("folder" if folder else "file name"))
    given, real = Path(text), Path(text).resolve()
    run = Path(run_dir).resolve() if run_dir is not None else None
    inside = run_dir is not None and _within(Path(os.path.abspath(given)), Path(os.path.abspath(run_dir)))
    if inside and not _within(real, run):
        raise ValueError(f"{given} is a symbolic link out of the run directory {run_dir} (to {real}); give the real path")
    if folder:
        if real.exists() and not real.is_dir():
            raise ValueError(f"{given} is a file; this export writes its files into a folder")
        if real == run:
            raise ValueError(f"{given} is the run directory itself; give a folder of its own")
        targets = [(given / name, real / name) for name in files]
    else:
        if real.is_dir():
            raise ValueError(f"{given} is a folder; give a file name")
        targets = [(given, real)]
    for shown, path in targets:
        final = path.resolve()
        if inside and not _within(final, run):
            raise ValueError(f"{shown} is a symbolic link out of the run directory {run_dir} (to {final}); remove it")
        if run is not None and final.parent == run and final.name in RUN_FILES:
            raise ValueError(f"{shown} is the run's own {final.name}; an export never writes over it")
        if final.is_dir():
            raise ValueError(f"{shown} is a folder; it cannot be written as a file")
        if (final.exists() or path.is_symlink()) and not force:
            raise ValueError(f"{shown} already exists; add --force to overwrite it")
    return real


def export_text(rows: Sequence[Mapping[str, Any]], fmt: str, *, title: str | None = None) -> str:
    """``rows`` as one of the text formats: json, paper or markdown."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "paper":
        return to_paper(rows)
    if fmt == "markdown":
        return to_markdown(rows, title=title)
    raise ValueError(f"{fmt!r} is not a text export format; expected json, paper or markdown")


def write_architecture(folder: str | Path, row: Mapping[str, Any], input_shape: Sequence[int], num_classes: int, *,
                       hidden: int = 512, init: str = "glorot", note: str | None = None) -> Path:
    """One exported row as an untrained standalone PyTorch file ``folder/rank_N.py``, written whole."""
    name = f"rank-{row['rank']}"
    return write_atomically(Path(folder) / pytorch_filename(name), pytorch_source(
        row["genome"], input_shape, num_classes, name, hidden=hidden, init=init, fitness=row.get("fitness"), note=note))


def write_export(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    out: str | Path,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    hidden: int = 512,
    init: str = "glorot",
    title: str | None = None,
) -> list[Path]:
    """Write ``rows`` as ``fmt`` to ``out`` (a file; for 'pytorch' a folder of one .py per architecture)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "pytorch" and (input_shape is None or num_classes is None):
        raise ValueError("the pytorch export needs the input shape and the number of classes")
    check_target(fmt, out)
    if fmt == "pytorch":
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for r in rows:
            note = None
            if r.get("test_accuracy") is not None:
                seeds = len(r.get("retrain_seeds") or [0])
                note = (f"Test accuracy when re-trained with the search's recipe (mean of {seeds} seed"
                        f"{'s' if seeds != 1 else ''}, at the best validation epoch): {float(r['test_accuracy']):.4f}.")
            written.append(write_architecture(out, r, input_shape, num_classes, hidden=hidden, init=init, note=note))
        return written
    out.parent.mkdir(parents=True, exist_ok=True)
    return [write_atomically(out, export_text(rows, fmt, title=title))]


# --------------------------------------------------------------------------------------------
# re-training (alife_nas.retraining runs it; this adds what it measured to a row)
# --------------------------------------------------------------------------------------------
def with_retraining(row: Mapping[str, Any], retraining: Any) -> dict:
    """``row`` plus a :class:`~alife_nas.retraining.Retraining`'s numbers.

    Adds ``test_accuracy`` (mean over the seeds), ``test_accuracies``, ``retrain_seeds``,
    ``retrain_epochs``, ``retrain_time`` and, when a training failed, ``retrain_failures``.
    Rows keep their rank: the ranking is the search's (validation accuracy).
    """
    new = dict(row)
    new["test_accuracy"] = retraining.test_accuracy
    new["test_accuracies"] = retraining.test_accuracies
    new["retrain_seeds"] = retraining.seeds
    new["retrain_epochs"] = retraining.epochs
    new["retrain_time"] = retraining.train_time
    if retraining.failures:
        new["retrain_failures"] = retraining.failures
    return new
