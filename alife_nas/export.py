"""Taking the result away: the K best distinct architectures of a run, in four formats.

``top_architectures`` ranks the run's trainings (best fitness per distinct genome, failures
left out); ``to_json`` / ``to_paper`` / ``to_markdown`` / ``pytorch_source`` (its own module,
:mod:`alife_nas.pytorch_source`, imported here) write them;
``write_export`` puts them on disk; ``with_retraining`` adds what a re-training
(:mod:`alife_nas.retraining`) measured; ``safe_target`` decides, before any work, whether an
output path may be written (never the run's own files, never through a symbolic link out of
the run directory, an existing file only with ``force``). ``pytorch_source`` with a
:class:`ModelCard` writes the standalone file of a TRAINED network (weights next to it, the
input normalisation, class names, ``load`` / ``predict``); :mod:`alife_nas.model_export` saves
the weights and the ONNX files. Nothing here needs torch or matplotlib.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from alife_nas.contract import FitnessStats
from alife_nas.files import TOP_K, write_atomically
from alife_nas.genome import (
    Genome,
    format_tuple_form,
    one_line,
    parse_genome,
    parse_tuple_form,
)
from alife_nas.pareto import pareto_front
from alife_nas.pytorch_source import ModelCard, model_files, pytorch_filename, pytorch_source
from alife_nas.store import DB_NAME, LOCK_NAME, UNKNOWN_FAILURE_KIND, Evaluation, rank_key

__all__ = [
    "FORMATS",
    "top_architectures",
    "PARETO_SIZES",
    "pareto_architectures",
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
    "network_settings",
    "failure_rows",
    "failures_to_markdown",
    "failures_text",
    "markdown_text",
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


def top_architectures(evaluations: Iterable[Evaluation], k: int = TOP_K,
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


#: What ``export --pareto`` may measure a network's size by: row keys of :func:`top_architectures`.
PARETO_SIZES = ("params", "flops")


def pareto_architectures(evaluations: Iterable[Evaluation], by: str = "params",
                         fitness: Mapping[str, FitnessStats] | None = None) -> list[dict]:
    """The distinct genomes no other one beats on both fitness and size (``by``: params or flops).

    Rows as :func:`top_architectures` makes them (best training or mean per genome, failures left
    out), each keeping its ``rank`` among all the run's genomes, so a genome has the same rank (and
    file name) as in a top-K export; listed best first. A genome whose size is unknown takes no part.
    """
    if by not in PARETO_SIZES:
        raise ValueError(f"a Pareto front is of accuracy against {' or '.join(PARETO_SIZES)}, not {by!r}")
    everything = list(evaluations)  # counted first: every genome ranked, none cut off
    rows = top_architectures(everything, k=max(1, len(everything)), fitness=fitness)
    front = pareto_front([r.get(by) for r in rows], [float(r["fitness"]) for r in rows])
    return [rows[i] for i in sorted(front)]  # rows are ranked already: index order is rank order


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


def to_paper(rows: Sequence[Mapping[str, Any]], *, title: str | None = None) -> str:
    """The seed's tuple form, one architecture per line, named ``rank-1``, ``rank-2``, ...

    Networks that are not the seed's (``head`` gap, ``batchnorm``) get a first ``#`` line saying
    so, a ``title`` a ``#`` line before it; :func:`read_paper` skips such lines."""
    lines = [format_tuple_form(parse_genome(r["genome"]), f"rank-{r['rank']}", float(r["fitness"])) for r in rows]
    if rows and (rows[0].get("head", "flatten") != "flatten" or rows[0].get("batchnorm")):
        lines.insert(0, f"# networks: head {rows[0].get('head', 'flatten')}, "
                        f"batchnorm {'on' if rows[0].get('batchnorm') else 'off'} (not the seed's)")
    if title:
        lines.insert(0, f"# {one_line(title, None)}")
    return "".join(line + "\n" for line in lines)


def read_paper(text: str) -> list[tuple[str | None, float | None, Genome]]:
    """Read tuple-form lines (as written by ``to_paper`` or the seed) back; blank lines skipped."""
    return [parse_tuple_form(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


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
        lines += [f"### {one_line(title, None)}", ""]
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
    lines += ["", _network_note(rows[0] if rows else {})]
    return "\n".join(lines) + "\n"


def _network_note(row: Mapping[str, Any]) -> str:
    """The line under a table saying what every network is besides its genome (head, batch norm)."""
    conv = "conv + batch norm (+ReLU)" if row.get("batchnorm") else "conv (+ReLU)"
    head = "global average pooling" if row.get("head") == "gap" else "flatten"
    return (f"Architecture: a number is a 3×3 {conv} with that many filters, `M` a 2×2 max-pool; every network "
            f"ends with {head} → dense {int(row.get('hidden') or 512)} + ReLU → dropout 0.5 → dense(classes). "
            "FLOPs per image, 2 per multiply-add.")


def network_settings(training: Any) -> dict[str, Any]:
    """What every exported row carries about the network beyond its genome (from TrainSettings)."""
    return {"hidden": training.hidden, "head": training.head, "batchnorm": training.batchnorm}


# --------------------------------------------------------------------------------------------
# failed trainings (``export --failures``)
# --------------------------------------------------------------------------------------------
#: Characters that mean something in a Markdown table cell's inline text; each is escaped.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")
#: A compact genome as the store writes it: safe inside a code span as it is.
_PLAIN_GENOME = re.compile(r"[0-9M]+(?:-[0-9M]+)*")


def failure_rows(failed: Iterable[tuple[int, Evaluation]]) -> list[dict]:
    """Failed trainings (:meth:`~alife_nas.store.RunStore.failed_trainings`) as export rows:
    ``step``, ``index`` (the candidate's index in its step), ``sample`` (0: the genome's first
    training), ``order`` (training order; None for a further sample), ``operator``, ``genome``,
    ``kind`` (``unknown`` when none was stored), ``reason`` (as stored) and ``params``."""
    return [{"step": ev.step, "index": ev.index, "sample": sample, "order": ev.order or None,
             "operator": ev.operator, "genome": ev.genome,
             "kind": UNKNOWN_FAILURE_KIND if ev.failure_kind is None else ev.failure_kind, "reason": ev.failure,
             "params": ev.params} for sample, ev in failed]


def markdown_text(value: Any) -> str:
    """Any value as the text of one Markdown table cell: on one line, every character that Markdown
    or a table would read as markup (``|``, ``*``, ``_``, backticks, ``<``, brackets, ...) escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line("" if value is None else value, None))


def failures_to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of failed trainings (:func:`failure_rows`); every value escaped as data."""
    with_samples = any(r.get("sample") for r in rows)
    head = ["Step", "Index"] + (["Sample"] if with_samples else []) + ["Operator", "Kind", "Architecture", "Reason"]
    align = ["--:", "--:"] + (["--:"] if with_samples else []) + [":--", ":--", ":--", ":--"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        genome = str(r.get("genome") or "")
        shown_genome = f"`{genome}`" if _PLAIN_GENOME.fullmatch(genome) else markdown_text(genome)
        cells = [markdown_text(r.get("step")), markdown_text(r.get("index"))]
        cells += [markdown_text(r.get("sample"))] if with_samples else []
        cells += [markdown_text(r.get("operator") or "–"), markdown_text(r.get("kind")), shown_genome,
                  markdown_text(r.get("reason"))]
        lines.append("| " + " | ".join(cells) + " |")
    if not rows:
        lines.append("| " + " | ".join(["–"] * len(head)) + " |")
    lines += ["", "Failed trainings (fitness 0), by step; Index: the candidate's place in its step"
              + ("; Sample: 0 is the genome's first training, 1, 2, ... further ones" if with_samples else "")
              + '. Kinds: docs/training.md, "Failure handling".']
    return "\n".join(lines) + "\n"


def failures_text(rows: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """Failed trainings (:func:`failure_rows`) as json (a list of objects) or markdown (a table)."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "markdown":
        return failures_to_markdown(rows)
    raise ValueError(f"failed trainings are written as json or markdown, not {fmt!r}")


# --------------------------------------------------------------------------------------------
# model exports (the standalone source itself: alife_nas.pytorch_source)
# --------------------------------------------------------------------------------------------
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
        return to_paper(rows, title=title)
    if fmt == "markdown":
        return to_markdown(rows, title=title)
    raise ValueError(f"{fmt!r} is not a text export format; expected json, paper or markdown")


def write_architecture(folder: str | Path, row: Mapping[str, Any], input_shape: Sequence[int], num_classes: int, *,
                       hidden: int = 512, init: str = "glorot", head: str = "flatten", batchnorm: bool = False,
                       note: str | None = None) -> Path:
    """One exported row as an untrained standalone PyTorch file ``folder/rank_N.py``, written whole."""
    name = f"rank-{row['rank']}"
    return write_atomically(Path(folder) / pytorch_filename(name), pytorch_source(
        row["genome"], input_shape, num_classes, name, hidden=hidden, init=init, head=head, batchnorm=batchnorm,
        fitness=row.get("fitness"), note=note))


def write_export(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    out: str | Path,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    hidden: int = 512,
    init: str = "glorot",
    head: str = "flatten",
    batchnorm: bool = False,
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
            written.append(write_architecture(out, r, input_shape, num_classes, hidden=hidden, init=init, head=head,
                                              batchnorm=batchnorm, note=note))
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
