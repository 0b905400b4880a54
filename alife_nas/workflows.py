"""The ``export``, ``compare`` and ``train`` workflows, end to end, as library calls.

:func:`export_run` ranks a run's best architectures and writes them (text formats, untrained or
re-trained PyTorch / ONNX files); :func:`compare_runs` compares runs at one budget of trainings
(table, plot, optional re-training of each run's best); :func:`train_genome` trains one genome
with a config's recipe and optionally saves the trained network. Each checks everything it can
(output paths, missing packages, damaged runs) before any training, returns a typed result, and
reports progress only through ``on_progress`` (a :class:`WorkflowEvent` per line of progress);
nothing here prints. ``alife-nas export | compare | train`` parse their options, call these
and print the result.

Errors are the library's one-line errors: :class:`WorkflowError` (a ``ValueError``: a refused
argument or output, a file the disk refused), :class:`~alife_nas.store.RunStoreError` (no run, a
damaged one), :class:`~alife_nas.config.ConfigError`, ``DatasetError``,
:class:`~alife_nas.model_export.ModelExportError` (ONNX packages missing, a model that cannot be
saved) and :class:`~alife_nas.genome.GenomeParseError`. Their messages name options as the
command line does (``--out`` is ``out=``, ``--force`` is ``force=True``).

Importing this module loads no torch and no matplotlib: the trainer, the model files and the
plot are imported when a call needs them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from alife_nas.export import (
    FORMATS,
    export_text,
    failure_rows,
    failures_text,
    model_files,
    model_shape,
    safe_target,
    network_settings,
    PARETO_SIZES,
    pareto_architectures,
    top_architectures,
    with_retraining,
    write_export,
)
from alife_nas.compare import RunCurve, common_budget, comparison_table, load_curve, setting_differences
from alife_nas.config import SearchConfig, settings_hash
from alife_nas.files import FIGURE_DPI, TOP_K, describe_os_error, write_atomically
from alife_nas.genome import Genome, one_line, parse_genome, shorten
from alife_nas.retraining import make_trainer, retrain
from alife_nas.store import RunStore, RunStoreError

__all__ = [
    "WorkflowError",
    "WorkflowEvent",
    "ExportResult",
    "ComparisonReport",
    "TrainOutcome",
    "export_run",
    "compare_runs",
    "train_genome",
    "EXPORT_FORMATS",
]

#: Every format :func:`export_run` writes: the text formats, then the model formats.
EXPORT_FORMATS = FORMATS + ("onnx",)
_MODEL_FORMATS = ("pytorch", "onnx")
#: How an export's title names the size a Pareto front is drawn against.
_SIZE_WORDS = {"params": "parameters", "flops": "forward FLOPs per image"}


class WorkflowError(ValueError):
    """A workflow refused an argument or an output, or the disk refused a file; one line."""


@dataclass(frozen=True)
class WorkflowEvent:
    """One line of progress from a workflow (``alife-nas`` prints ``text`` on stderr).

    ``kind``: ``"notice"`` (a run read without its WAL file), ``"warning"`` (compare with
    ``force``: a setting that differs), ``"retraining"`` (re-trainings begin), ``"retrained"``
    (one architecture re-trained; ``data`` is its exported row, or the run's
    :class:`~alife_nas.compare.RunCurve` in a comparison), ``"training"`` (train_genome's
    training begins; ``data`` is ``{"dataset", "device", "preset", "max_epochs"}``).
    """

    kind: str
    text: str
    data: Any = None


Progress = Callable[[WorkflowEvent], None]


def _report(on_progress: Progress | None, kind: str, text: str, data: Any = None) -> None:
    if on_progress is not None:
        on_progress(WorkflowEvent(kind, text, data))


def _open(run_dir: str | Path, on_progress: Progress | None) -> RunStore:
    """A run opened for reading (RunStoreError if it is none); its notice, if any, reported."""
    store = RunStore.open(run_dir, readonly=True)
    if store.notice:
        _report(on_progress, "notice", store.notice)
    return store


def _seeds(retrain_seeds: int) -> int:
    if isinstance(retrain_seeds, bool) or not isinstance(retrain_seeds, int) or retrain_seeds < 1:
        raise WorkflowError(f"retrain_seeds must be a whole number of at least 1, got {retrain_seeds!r}")
    return retrain_seeds


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
@dataclass
class ExportResult:
    """What :func:`export_run` did.

    ``rows``: the exported architectures, best first (with ``test_accuracy`` and the other
    re-training keys when ``trained``); ``out``: where they went, as given (the default folder
    for pytorch and onnx; None when the text came back instead); ``files``: every file written,
    in writing order; ``text``: the export itself when a text format had no ``out``. With
    ``failures`` the rows are the run's failed trainings instead (:func:`alife_nas.export.failure_rows`).
    """

    run_dir: Path
    format: str
    rows: list[dict]
    out: Path | None
    files: list[Path] = field(default_factory=list)
    text: str | None = None
    trained: bool = False
    failures: bool = False


def export_run(run_dir: str | Path, *, top: int = TOP_K, fmt: str = "markdown", out: str | Path | None = None,
               force: bool = False, retrain: bool = False, retrain_seeds: int = 1, device: str | None = None,
               data_dir: str | None = None, on_progress: Progress | None = None,
               failures: bool = False, pareto: str | None = None) -> ExportResult:
    """Export the ``top`` best distinct architectures of ``run_dir`` as ``fmt``.

    With ``pareto`` (``params`` or ``flops``) the architectures are instead the Pareto front of
    validation accuracy against that size (:func:`alife_nas.export.pareto_architectures`): every
    one of them, best first, each with its rank among all the run's genomes; ``top`` does not
    apply. Markdown and paper say so in a title line.

    With ``failures`` the export is instead every failed training of the run (genome, kind,
    reason, step, index; :func:`alife_nas.export.failure_rows`), as json or markdown, written to
    the file ``out`` or returned as text; ``top`` does not apply, ``retrain`` is refused. A run
    without failures gives an empty list (an empty table).

    ``fmt``: json, paper, markdown (text: written to the file ``out``, or returned as
    :attr:`ExportResult.text` when ``out`` is None), pytorch or onnx (one file per architecture
    into the folder ``out``, by default ``RUN_DIR/export-FORMAT``). With ``retrain`` each
    architecture is re-trained with the run's own recipe (:mod:`alife_nas.retraining`, seeds
    ``0..retrain_seeds-1``, on ``device``, the data set read from ``data_dir`` or the run's), its
    test accuracy added to its row, and pytorch / onnx files hold the trained networks (each
    written as soon as it is trained). Existing files are kept unless ``force``; the run's own
    files never are overwritten. Every refusal comes before the first training.
    """
    if fmt not in EXPORT_FORMATS:
        raise WorkflowError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise WorkflowError(f"top must be a whole number of at least 1, got {top!r}")
    seeds = _seeds(retrain_seeds)
    if pareto is not None and pareto not in PARETO_SIZES:
        raise WorkflowError(f"pareto must be one of {', '.join(PARETO_SIZES)}, got {pareto!r}")
    if failures and pareto is not None:
        raise WorkflowError("--pareto does not apply to --failures (a failed training has no accuracy)")
    if failures:
        return _export_failures(run_dir, fmt, out, force=force, retrain=retrain, on_progress=on_progress)
    info_problem = None
    with _open(run_dir, on_progress) as store:
        config = store.config
        try:
            evaluations = store.evaluations()
            fitness = store.genome_fitness()  # each genome's mean over its trainings
        except ValueError as exc:  # a value the store cannot decode: the database was damaged
            raise RunStoreError(f"{run_dir}: the run database is damaged: {one_line(exc)}") from None
        try:
            info = store.dataset_info
        except ValueError as exc:  # only the model formats need it: complain below if they do
            info, info_problem = None, f"its data set record is damaged ({one_line(exc)})"
    try:
        rows = (top_architectures(evaluations, k=top, fitness=fitness) if pareto is None
                else pareto_architectures(evaluations, by=pareto, fitness=fitness))
        rows = [{**row, **network_settings(config.training)} for row in rows]
    except ValueError as exc:  # a stored genome no parser reads: the database was damaged
        raise RunStoreError(f"{run_dir}: the run database holds a genome that cannot be read ({exc})") from None
    if not rows:
        raise WorkflowError(f"{run_dir} has no successful training yet: nothing to export")
    models = fmt in _MODEL_FORMATS
    if models:
        if info_problem:
            raise RunStoreError(f"{run_dir}: {info_problem}; cannot write {fmt} files")
        try:
            input_shape, num_classes, _ = model_shape(info)
        except ValueError as exc:
            raise RunStoreError(f"{run_dir}: {exc}; cannot write {fmt} files") from None
        if fmt == "onnx":
            from alife_nas.model_export import require_onnx

            require_onnx()  # ModelExportError, before any work
    # as given (an empty text stays empty, to be refused), or the default folder of a model format
    target = os.fspath(out) if out is not None else (str(Path(run_dir) / f"export-{fmt}") if models else None)
    real = None
    if target is not None:  # before re-training: a wrong out must not cost an hour of training first
        files = [f for r in rows for f in model_files(f"rank-{r['rank']}", fmt, trained=retrain)] if models else []
        try:
            real = safe_target(target, run_dir, folder=models, files=files, force=force)
        except ValueError as exc:
            raise WorkflowError(f"--out {exc}") from None
    result = ExportResult(run_dir=Path(run_dir), format=fmt, rows=rows, out=None if target is None else Path(target),
                          trained=retrain)

    def write_models(batch: list[dict], retrainings: list[Any] | None = None, trainer: Any = None) -> None:
        """Write the model files of ``batch`` (as soon as each is re-trained: weights never pile up)."""
        from alife_nas.model_export import ModelExportError, export_models

        meta = None if trainer is None else {
            "run": str(Path(run_dir).resolve()), "device": str(trainer.device),
            "data_split": {"val_size": config.data.val_size, "split_seed": config.data.split_seed}}
        try:
            result.files.extend(export_models(
                batch, fmt, real, input_shape=input_shape, num_classes=num_classes, hidden=config.training.hidden,
                init=config.training.init, head=config.training.head, batchnorm=config.training.batchnorm,
                retrainings=retrainings, data=trainer and trainer.data,
                settings=trainer and trainer.settings, metadata=meta))
        except (OSError, ValueError, ModelExportError) as exc:
            raise WorkflowError(f"cannot write the export to {target}: {exc}") from exc

    if retrain:
        if data_dir is not None:
            config = config.with_options(data_dir=data_dir)
        result.rows = _retrain_rows(rows, config, device, seeds, write_models if models else None, on_progress)
    elif models:
        write_models(rows)
    title = None if pareto is None else f"Pareto front: validation accuracy against {_SIZE_WORDS[pareto]}"
    if target is None:
        result.text = export_text(result.rows, fmt, title=title)
    elif not models:
        try:
            result.files.extend(write_export(result.rows, fmt, real, title=title))
        except (OSError, ValueError) as exc:
            raise WorkflowError(f"cannot write the export to {target}: {exc}") from exc
    return result


def _export_failures(run_dir: str | Path, fmt: str, out: str | Path | None, *, force: bool, retrain: bool,
                     on_progress: Progress | None) -> ExportResult:
    """:func:`export_run` with ``failures``: the run's failed trainings as json or markdown."""
    if fmt not in ("json", "markdown"):
        raise WorkflowError(f"--failures lists the failed trainings as json or markdown, not --format {fmt}")
    if retrain:
        raise WorkflowError("--retrain does not apply to --failures (a failed training has nothing to re-train)")
    with _open(run_dir, on_progress) as store:
        try:
            rows = failure_rows(store.failed_trainings())
        except ValueError as exc:  # a value the store cannot decode: the database was damaged
            raise RunStoreError(f"{run_dir}: the run database is damaged: {one_line(exc)}") from None
    target = None if out is None else os.fspath(out)  # as given: an empty text stays empty, to be refused
    result = ExportResult(run_dir=Path(run_dir), format=fmt, rows=rows, out=None if target is None else Path(target),
                          failures=True)
    text = failures_text(rows, fmt)
    if target is None:
        result.text = text
        return result
    try:
        real = safe_target(target, run_dir, folder=False, force=force)
    except ValueError as exc:
        raise WorkflowError(f"--out {exc}") from None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        result.files.append(write_atomically(real, text))
    except OSError as exc:
        raise WorkflowError(f"cannot write the export to {target}: {exc}") from exc
    return result


def _retrain_rows(rows: list[dict], config: SearchConfig, device: str | None, seeds: int,
                  save: Callable[[list[dict], list[Any], Any], None] | None,
                  on_progress: Progress | None) -> list[dict]:
    """Re-train the exported rows (alife_nas.retraining's policy), reporting each.

    With ``save`` each architecture keeps its best seed's weights (by validation accuracy) and
    ``save([row], [retraining], trainer)`` writes its files at once, before the next one trains.
    """
    trainer = make_trainer(config, device=device)
    _report(on_progress, "retraining", f"re-training {len(rows)} architectures on {config.data.dataset} "
                                       f"({trainer.device}, seeds 0..{seeds - 1})")
    done_rows = []
    for row in rows:
        done = retrain(row["genome"], trainer, seeds, keep_weights=save is not None)
        new = with_retraining(row, done)
        failed = f", failed: {'; '.join(new['retrain_failures'])}" if new.get("retrain_failures") else ""
        _report(on_progress, "retrained", f"  {row['rank']:>2}. {row['genome']}: test accuracy "
                                          f"{new['test_accuracy']:.4f} ({new['retrain_time']:.1f} s{failed})", new)
        if save is not None:
            save([new], [done], trainer)
            for trained in done.results:
                trained.weights = None  # written: free them before the next architecture trains
        done_rows.append(new)
    return done_rows


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------
@dataclass
class ComparisonReport:
    """What :func:`compare_runs` found: every run's curve (``test_accuracy`` set when re-trained),
    the budget every run was cut at (``budget_given``: it was asked for, else the smallest run's),
    the settings that differ from the first run's (``(run_dir, differences)``, with ``force``),
    the table, and the files written (``comparison.txt``, ``comparison.png``; none without ``out``).
    ``cost`` is what the budget and the x-axis count (trainings, epochs or flops)."""

    run_dirs: list[Path]
    curves: list[RunCurve]
    budget: float
    budget_given: bool
    table: str
    differences: list[tuple[Path, list[str]]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    cost: str = "trainings"

    def figure(self) -> Any:
        """The comparison plot (a matplotlib Figure): :func:`alife_nas.compare.plot_comparison`."""
        from alife_nas.compare import plot_comparison

        return plot_comparison(self.curves, budget=self.budget, cost=self.cost)


def compare_runs(run_dirs: Sequence[str | Path], *, budget: float | None = None, out: str | Path | None = None,
                 force: bool = False, retrain: bool = False, retrain_seeds: int = 1, device: str | None = None,
                 on_progress: Progress | None = None, cost: str = "trainings") -> ComparisonReport:
    """Compare runs at one budget (several seeds per strategy: median and min–max).

    ``cost`` is what the budget and the x-axis count: ``trainings`` (the default), ``epochs``
    trained or training ``flops`` (forward FLOPs x training images x 3 per epoch), which count a
    pruned training (``--prune``) for what it cost.

    The runs must share their data set and training settings, else WorkflowError names the
    first difference; with ``force`` each difference is reported (a ``"warning"`` event) and the
    comparison goes on. ``budget`` cuts every run at that many trainings (refused if a run has
    fewer); by default the smallest run's. With ``retrain`` each run's best architecture is
    re-trained with its run's recipe and its mean test accuracy goes into the table. With
    ``out`` the folder gets ``comparison.txt`` and ``comparison.png`` (each whole or not at
    all; the folder is made before any re-training).
    """
    names = [os.fspath(d) for d in run_dirs]  # as given: messages name the runs so
    run_dirs = [Path(name) for name in names]
    if not run_dirs:
        raise WorkflowError("no runs to compare")
    seeds = _seeds(retrain_seeds)
    curves, configs = [], []
    for run_dir, name in zip(run_dirs, names):
        with _open(name, on_progress) as store:
            curves.append(load_curve(store, run_dir.name or name))
            configs.append(store.config)
    differences = []
    for index, found in setting_differences(curves):
        if not force:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise WorkflowError(f"{names[0]} and {names[index]} differ in data or training settings: {found[0]}"
                                f"{more}; compare runs of one data set and trainer, or give --force")
        differences.append((run_dirs[index], found))
        for difference in found:
            _report(on_progress, "warning", f"warning: {names[index]} differs from {names[0]}: {difference}")
    try:
        cut = common_budget(curves, budget, cost)
    except ValueError as exc:
        raise WorkflowError(f"--{exc}" if str(exc).startswith("budget") else str(exc)) from None
    if cut == 0:
        empty = next(name for name, curve in zip(names, curves) if not curve.best)
        raise WorkflowError(f"{empty} has no training yet: nothing to compare")
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        try:  # before re-training: a folder that cannot be made must not cost the trainings first
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_failed(exc) from None
    if retrain:
        _retrain_best(curves, configs, device, seeds, on_progress)
    report = ComparisonReport(run_dirs=run_dirs, curves=curves, budget=cut, budget_given=budget is not None,
                              table=comparison_table(curves, cut, cost), differences=differences, cost=cost)
    if out_dir is not None:
        from alife_nas.visualize import save_figure

        try:
            report.files.append(write_atomically(out_dir / "comparison.txt", report.table + "\n"))
            report.files.append(save_figure(report.figure(), out_dir / "comparison.png", dpi=FIGURE_DPI))
        except OSError as exc:
            raise _write_failed(exc) from None
    return report


def _write_failed(exc: OSError) -> WorkflowError:
    """A file or folder the disk refused (full, read-only, ...), as one line naming it and what to do."""
    return WorkflowError(describe_os_error(exc, "another folder (--out)"))


def _retrain_best(curves: list[RunCurve], configs: list[SearchConfig], device: str | None, seeds: int,
                  on_progress: Progress | None) -> None:
    """Re-train each run's best genome with its run's recipe and record the mean test accuracy.

    The policy of :mod:`alife_nas.retraining`: seeds 0..seeds-1, test accuracy at the best
    validation epoch, a failed training counts 0. Runs sharing a data set and settings share
    one trainer (the data set is loaded and moved to the device once).
    """
    trainers: dict[tuple, Any] = {}
    for curve, config in zip(curves, configs):
        if curve.best_genome is None:
            continue
        key = (settings_hash(config.cache_settings()), config.data.data_dir)
        if key not in trainers:
            trainers[key] = make_trainer(config, device=device)
        _report(on_progress, "retraining", f"re-training {curve.name}'s best {curve.best_genome} "
                                           f"(seeds 0..{seeds - 1})", curve)
        curve.test_accuracy = retrain(curve.best_genome, trainers[key], seeds).test_accuracy


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------
@dataclass
class TrainOutcome:
    """What :func:`train_genome` did: the training's :class:`~alife_nas.training.TrainResult`
    (``result.failure`` set when it failed: nothing is saved then), the data set, preset and
    device it used, and the files saved (as the ``save`` folder was named; ``model.py``,
    ``model.pt`` and, with ``onnx``, ``model.onnx``)."""

    result: Any
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    preset: str
    device: str
    save: Path | None = None
    saved: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.result.failure)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``alife-nas train --json`` prints: the result's fields, the data set,
        preset and device, and ``saved`` (paths as text) when a folder was given."""
        extra = {"saved": [str(p) for p in self.saved]} if self.save is not None else {}
        return {**self.result.to_dict(), "dataset": self.dataset, "preset": self.preset, "device": self.device,
                **extra}


def train_genome(genome: Genome | str, config: SearchConfig | Mapping[str, Any] | None = None, *, seed: int = 0,
                 save: str | Path | None = None, onnx: bool = False, force: bool = False, download: bool = True,
                 data: Any = None, on_progress: Progress | None = None,
                 on_epoch: Callable[[int, int, float], None] | None = None) -> TrainOutcome:
    """Train ``genome`` once with ``config``'s data set and training recipe, measure its test
    accuracy, and with ``save`` keep the trained network.

    ``config``: a :class:`~alife_nas.config.SearchConfig`, or option names to values for
    :meth:`SearchConfig.from_options <alife_nas.config.SearchConfig.from_options>` (checked after
    the genome and ``save``); None: ``SearchConfig()``.

    The policy of :mod:`alife_nas.retraining` with the one seed ``seed``: fitness is the best
    validation accuracy, the test accuracy is measured with that epoch's weights, and those are
    the weights ``save`` writes into the folder: ``model.pt`` and ``model.py`` (``load()``,
    ``predict(images)``, only torch needed), with ``onnx`` also ``model.onnx``. Existing files are
    kept unless ``force``; a wrong folder or missing ONNX packages are refused before training.
    ``data``: the splits already loaded (else loaded from the config, downloading a missing
    torchvision set with ``download``). ``on_progress`` gets a ``"training"`` event when the
    training begins, ``on_epoch(epoch, max_epochs, val_accuracy)`` each epoch. A failed training
    (too large, out of memory, ...) is no error: see :attr:`TrainOutcome.failed`.
    """
    parsed = parse_genome(genome) if isinstance(genome, str) else genome  # GenomeParseError
    for flag, value in (("--onnx", onnx), ("--force", force)):
        if value and save is None:
            raise WorkflowError(f"{flag} only applies with --save")
    folder = None
    if save is not None:  # before training: a wrong folder or a missing package must not cost the training
        from alife_nas.model_export import require_onnx, saved_files

        try:
            folder = safe_target(save, None, folder=True, files=saved_files("model", onnx=onnx), force=force)
        except ValueError as exc:
            raise WorkflowError(f"--save {exc}") from None
        if onnx:
            require_onnx()
    if not isinstance(config, SearchConfig):
        config = SearchConfig.from_options(**(config or {}))  # ConfigError
    trainer = make_trainer(config, data=data, download=download)
    splits, settings, device = trainer.data, trainer.settings, str(trainer.device)
    _report(on_progress, "training",
            f"training {shorten(str(parsed))} on {splits.name} ({len(splits.train_y)} train / {len(splits.val_y)} val / "
            f"{len(splits.test_y)} test) with the {settings.preset} preset on {device}",
            {"dataset": splits.name, "device": device, "preset": settings.preset, "max_epochs": settings.max_epochs})
    result = retrain(parsed, trainer, seeds=[seed], on_epoch=on_epoch, keep_weights=folder is not None).results[0]
    outcome = TrainOutcome(result=result, dataset=splits.name, input_shape=tuple(splits.input_shape),
                           num_classes=splits.num_classes, preset=settings.preset, device=device,
                           save=None if save is None else Path(save))
    if folder is not None and not result.failure:
        from alife_nas.model_export import ModelExportError, save_trained

        meta = {"device": device, "data_split": {"val_size": config.data.val_size, "split_seed": config.data.split_seed}}
        try:
            written = save_trained(folder, "model", result, splits, settings, metadata=meta, onnx=onnx)
        except (OSError, ModelExportError) as exc:
            raise ModelExportError(f"cannot save the model to {save}: {exc}") from exc
        outcome.saved = [Path(save) / p.name for p in written]  # as the user named the folder
    return outcome
