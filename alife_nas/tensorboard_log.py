"""A TensorBoard log of a run: an observer of :meth:`alife_nas.search.Search.run`, never part of its results.

Layout under ``RUN_DIR/tensorboard/`` (one TensorBoard *run* per folder):

- the folder itself, the search: scalars ``fitness/best`` (best found so far), ``fitness/mean``,
  ``fitness/worst`` (the population the strategy holds now), ``search/trainings``,
  ``search/cache_hits``, ``search/failures``, all with x = step; the image ``lattice/fitness`` (the
  heatmap of :func:`alife_nas.visualize.render_heatmaps`) every ``every`` steps, at step 0 and at
  the last step;
- ``trainings/00012_32-M-64/``, one per training (its order, then its genome): the scalar
  ``val_accuracy`` with x = epoch, and an hparams session (genome, params, flops, epochs, step,
  operator -> ``hparams/fitness``). With a thousand trainings the Scalars tab still shows one
  ``val_accuracy`` chart (filter the runs by a regex on order or genome), and the HParams tab one
  table row per training.

Nothing is written twice when a run is resumed: steps are logged as they finish (a finished step
never runs again) and a training whose folder exists is skipped. What ran while the log was off is
not backfilled. The ``tensorboard`` package is an extra: it is imported only here, and only when a
log is made; :func:`check_available` says in one line how to install it.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["TensorBoardLog", "TensorBoardMissing", "check_available", "training_run_name", "LOG_DIR", "DEFAULT_EVERY",
           "FITNESS_METRIC"]

#: The log's folder inside a run directory.
LOG_DIR = "tensorboard"
#: Steps between two lattice images (step 0 and the last step are always drawn).
DEFAULT_EVERY = 5
#: The metric of every training's hparams session (a tag of its own, so no chart repeats it).
FITNESS_METRIC = "hparams/fitness"
#: Longest genome text in a training's folder name (the whole genome is in its hparams).
_NAME_GENOME = 60


class TensorBoardMissing(ImportError):
    """The ``tensorboard`` extra is not installed (or cannot be imported); the message is one line."""


def check_available() -> None:
    """Raise :class:`TensorBoardMissing` unless a TensorBoard log can be written here."""
    try:
        import tensorboard  # noqa: F401 - torch's writer needs the package itself
        import torch.utils.tensorboard  # noqa: F401
    except ImportError as exc:
        raise TensorBoardMissing(
            f'--tensorboard needs the tensorboard package ({exc}); install it with: pip install "alife-nas[tensorboard]"'
        ) from None


def training_run_name(order: int, genome: str) -> str:
    """The folder of one training's TensorBoard run: ``trainings/00012_32-M-64`` (safe as a file name)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", genome)[:_NAME_GENOME]
    return f"trainings/{order:05d}_{safe}"


class TensorBoardLog:
    """Writes a run's TensorBoard log from the search's callbacks (``on_step``, ``on_result``).

    ``store`` is the run's :class:`~alife_nas.store.RunStore` (read for the lattice images);
    ``every`` is the number of steps between two lattice images.
    """

    def __init__(self, run_dir: str | Path, store: Any, every: int = DEFAULT_EVERY) -> None:
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self._writer_class = SummaryWriter
        self.dir = Path(run_dir) / LOG_DIR
        self.store = store
        self.every = max(1, int(every))
        self.writer = SummaryWriter(log_dir=str(self.dir))

    # --- callbacks of Search.run -----------------------------------------------------------
    def on_step(self, summary: Any) -> None:
        """Per-step scalars, and the lattice image every ``every`` steps (and at the first and last)."""
        step = int((summary.record or {}).get("step", summary.step))
        w = self.writer
        w.add_scalar("fitness/best", summary.best_fitness, step)
        w.add_scalar("fitness/mean", summary.mean, step)
        w.add_scalar("fitness/worst", summary.worst, step)
        w.add_scalar("search/trainings", summary.trainings, step)
        w.add_scalar("search/cache_hits", summary.cache_hits, step)
        w.add_scalar("search/failures", summary.failures, step)
        if step % self.every == 0 or summary.finished:
            self._lattice_image(step)
        w.flush()  # a kill loses at most the step in flight, like the store

    def on_result(self, request: Any, ev: Any, cached: bool) -> None:
        """One run per training: its validation curve and its hparams row (cache hits are no training)."""
        if cached or not ev.order:
            return
        run = self.dir / training_run_name(ev.order, ev.genome)
        if run.exists():  # logged before a crash: a resumed run replays it
            return
        from torch.utils.tensorboard.summary import hparams

        hp = {"genome": ev.genome, "params": ev.params or 0, "flops": ev.flops or 0, "epochs": ev.epochs or 0,
              "step": ev.step, "operator": ev.operator or ""}
        with self._writer_class(log_dir=str(run)) as w:
            for epoch, value in enumerate(ev.history, start=1):
                w.add_scalar("val_accuracy", value, epoch)
            for summary in hparams(hp, {FITNESS_METRIC: ev.fitness}):
                w.file_writer.add_summary(summary)
            w.add_scalar(FITNESS_METRIC, ev.fitness, 0)

    def close(self) -> None:
        """Flush and close the search's event file."""
        self.writer.close()

    # --- pictures ------------------------------------------------------------------------------
    def _lattice_image(self, step: int) -> None:
        """The step's fitness heatmap, drawn by the ``heatmap`` command's own renderer."""
        last = self.store.last_step()
        if last is None or last.lattice is None:
            return  # a strategy without a lattice
        import numpy as np
        from PIL import Image

        from alife_nas.visualize import render_heatmaps

        with tempfile.TemporaryDirectory() as tmp:
            (path,) = render_heatmaps(self.store, tmp, "fitness", steps=step)
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image("lattice/fitness", pixels, step, dataformats="HWC")
