"""Taking the result away: the K best distinct architectures of a run, in four formats.

``top_architectures`` ranks the run's trainings (best fitness per distinct genome, failures
left out); ``to_json`` / ``to_paper`` / ``to_markdown`` / ``pytorch_source`` write them;
``write_export`` puts them on disk; ``with_retraining`` adds what a re-training
(:mod:`alife_nas.retraining`) measured. Nothing here needs torch or matplotlib.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from alife_nas.genome import (
    Conv,
    Genome,
    format_tuple_form,
    parse_genome,
    parse_tuple_form,
)
from alife_nas.shapes import INITS, PlannedLayer, describe_genome, layer_plan
from alife_nas.store import Evaluation

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
    "check_target",
    "export_text",
    "write_export",
    "with_retraining",
]

FORMATS = ("json", "paper", "markdown", "pytorch")

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
    return (
        -ev.fitness,
        float(ev.params) if ev.params is not None else math.inf,
        ev.order if ev.order else math.inf,
        ev.genome,
    )


def top_architectures(evaluations: Iterable[Evaluation], k: int = 15) -> list[dict]:
    """The ``k`` best distinct genomes (best fitness per genome; failures left out), ranked 1..k.

    Ties in fitness go to the smaller network (fewer parameters), then to the one found first
    (lower training order), so the ranking is deterministic. ``k`` may exceed what is available.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    best: dict[str, Evaluation] = {}
    trained: dict[str, int] = {}
    for ev in evaluations:
        genome = str(parse_genome(ev.genome))  # canonical compact form
        trained[genome] = trained.get(genome, 0) + 1
        if not _usable(ev):
            continue
        candidate = dataclasses.replace(ev, genome=genome)
        if genome not in best or _rank_key(candidate) < _rank_key(best[genome]):
            best[genome] = candidate
    ranked = sorted(best.values(), key=_rank_key)[:k]
    rows: list[dict] = []
    for rank, ev in enumerate(ranked, start=1):
        genome = parse_genome(ev.genome)
        found = ev.to_dict()
        row: dict[str, Any] = {
            "rank": rank,
            "genome": ev.genome,
            "fitness": ev.fitness,
            "convs": genome.num_convs,
            "pools": genome.num_pools,
            "layers": len(genome),
            **{key: found[key] for key in _COPIED},
            "trainings": trained[ev.genome],
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
    head = ["Rank", "Architecture", "Val. acc."] + (["Test acc."] if with_test else [])
    head += ["Params", "FLOPs", "Conv", "Pool", "Found"]
    align = ["--:", ":--", "--:"] + (["--:"] if with_test else []) + ["--:", "--:", "--:", "--:", ":--"]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        genome = parse_genome(r["genome"])
        cells = [str(r["rank"]), f"`{genome}`", _pct(r["fitness"])]
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
) -> str:
    """A standalone Python file (torch only, no alife_nas) defining the genome's network.

    Layer names match alife_nas's builder (``features``, ``hidden``, ``dropout``,
    ``classifier``), so a state_dict saved by alife_nas loads into it; layers, parameters and
    FLOPs come from ``alife_nas.shapes``, the arithmetic the builder follows too, so max-pools the
    builder skips (map already below 2 pixels) are skipped here as well. ``init`` picks the weight
    initialisation ``build()`` applies: 'glorot' (Keras' default), 'kaiming' or 'torch'.
    """
    g = parse_genome(genome) if isinstance(genome, str) else genome
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected glorot, kaiming or torch")
    info = describe_genome(g, tuple(input_shape), num_classes, hidden)
    features = "\n".join(line for step in layer_plan(g, info.input_shape) for line in _pytorch_layer_lines(step))
    params, flops = info.params, info.flops
    channels, height, width = info.output_shape
    in_c, in_h, in_w = info.input_shape
    found = f"Validation accuracy in the search: {fitness:.4f}.\n" if fitness is not None else ""
    extra = f"{note}\n" if note else ""
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
    return f'''#!/usr/bin/env python3
"""{name}: the CNN {g} found by alife-nas (NeuralFinder lattice evolution).

{found}Input {in_c} x {in_h} x {in_w}, {num_classes} classes: {params:,} parameters,
{flops:,} FLOPs per image (2 per multiply-add).
{extra}
Standalone: needs only PyTorch. Each number in the genome is a 3x3 conv (stride 1, padding 1,
bias) + ReLU, each M a 2x2 max-pool (stride 2); then flatten -> Linear({hidden}) + ReLU ->
Dropout(0.5) -> Linear(classes). The search trained it with an L2 penalty on the classifier's
weight. Module names match alife_nas's builder, so its state_dicts load here.

    python {pytorch_filename(name)}      # prints the parameter count
    from {pytorch_filename(name)[:-3]} import build; model = build()
"""
import torch
from torch import nn

GENOME = "{g}"
INPUT_SHAPE = ({in_c}, {in_h}, {in_w})  # channels, height, width
NUM_CLASSES = {num_classes}
HIDDEN = {hidden}
PARAMS = {params}  # expected parameter count


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
    """The initialisation the search used ({init})."""
{init_body}

def build(num_classes: int = NUM_CLASSES) -> Net:
    """A freshly initialised network (seed torch first for repeatable weights)."""
    model = Net(num_classes)
    init_weights(model)
    return model


if __name__ == "__main__":
    net = build()
    count = sum(p.numel() for p in net.parameters())
    logits = net.eval()(torch.zeros(1, *INPUT_SHAPE))
    print(f"{{GENOME}}: {{count}} parameters, output shape {{tuple(logits.shape)}}")
'''


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


def export_text(rows: Sequence[Mapping[str, Any]], fmt: str, *, title: str | None = None) -> str:
    """``rows`` as one of the text formats: json, paper or markdown."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "paper":
        return to_paper(rows)
    if fmt == "markdown":
        return to_markdown(rows, title=title)
    raise ValueError(f"{fmt!r} is not a text export format; expected json, paper or markdown")


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
            name = f"rank-{r['rank']}"
            note = None
            if r.get("test_accuracy") is not None:
                seeds = len(r.get("retrain_seeds") or [0])
                note = (f"Test accuracy when re-trained with the search's recipe (mean of {seeds} seed"
                        f"{'s' if seeds != 1 else ''}, at the best validation epoch): {float(r['test_accuracy']):.4f}.")
            path = out / pytorch_filename(name)
            path.write_text(
                pytorch_source(r["genome"], input_shape, num_classes, name, hidden=hidden, init=init,
                               fitness=r.get("fitness"), note=note)
            )
            written.append(path)
        return written
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_text(rows, fmt, title=title))
    return [out]


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
