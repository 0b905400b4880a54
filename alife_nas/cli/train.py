"""``alife-nas train GENOME --dataset NAME``: train one genome, report validation and test accuracy;
``--save DIR`` keeps the trained network (weights, a standalone predict file, ONNX with ``--onnx``)."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from alife_nas.cli._common import (
    UserError,
    config_option,
    data_options,
    device_option,
    download_option,
    given,
    print_progress,
    training_options,
    user_errors,
)
from alife_nas.cli._group import main
from alife_nas.genome import GenomeParseError, shorten
from alife_nas.workflows import WorkflowEvent, train_genome


def _epoch_reporter(max_epochs: int):
    """Progress over epochs on stderr: a bar on a terminal, one line per epoch otherwise."""
    if sys.stderr.isatty():
        state: dict[str, Any] = {"val": None}
        bar = click.progressbar(length=max_epochs, label="training", file=sys.stderr,
                                item_show_func=lambda _: "" if state["val"] is None else f"val {state['val']:.4f}")
        bar.__enter__()

        def on_epoch(epoch: int, total: int, val: float) -> None:
            state["val"] = val
            bar.update(1)

        return on_epoch, lambda: bar.__exit__(None, None, None)

    def line(epoch: int, total: int, val: float) -> None:
        click.echo(f"epoch {epoch}/{total}  val {val:.4f}", err=True)

    return line, lambda: None


@main.command()
@click.argument("genome")
@data_options
@training_options
@device_option
@click.option("--seed", default=0, type=int, help="Training seed (weights, data order, augmentation).")
@download_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (no progress output).")
@click.option("--save", type=click.Path(), default=None,
              help="Folder to keep the trained network in: model.pt (the weights of the best validation epoch) "
                   "and model.py (imports only torch: load(), predict(images)).")
@click.option("--onnx", is_flag=True, default=False,
              help="With --save: also model.onnx (needs the onnx extra: pip install \"alife-nas[onnx]\").")
@click.option("--force", is_flag=True, default=False, help="With --save: overwrite the files if they exist.")
@config_option
def train(genome: str, seed: int, download: bool, as_json: bool, save: str | None, onnx: bool, force: bool,
          **options: Any) -> None:
    """Train one GENOME (compact `32-M-64` or the seed's tuple form) and report its accuracy.

    The same recipe as a search with the same options, and as `export --retrain` and
    `compare --retrain` (docs/training.md): fitness is the best validation accuracy; the test
    accuracy is measured with the weights of that best epoch, and those are the weights --save
    keeps. Exit code 1 when the training failed (too large, out of memory, ...); nothing is
    saved then.
    """
    progress: dict[str, Any] = {"on_epoch": None, "done": lambda: None}

    def on_progress(event: WorkflowEvent) -> None:  # the training begins: its line, then the epochs' progress
        print_progress(event)
        progress["on_epoch"], progress["done"] = _epoch_reporter(event.data["max_epochs"])

    def on_epoch(epoch: int, total: int, val: float) -> None:
        progress["on_epoch"](epoch, total, val)

    try:
        with user_errors():
            outcome = train_genome(genome, given(options), seed=seed, save=save, onnx=onnx, force=force,
                                   download=download, on_progress=None if as_json else on_progress,
                                   on_epoch=None if as_json else on_epoch)
    except GenomeParseError as exc:
        raise UserError(f"malformed genome: {exc}") from None
    finally:
        progress["done"]()

    result = outcome.result
    saved = [str(path) for path in outcome.saved]
    if as_json:
        click.echo(json.dumps(outcome.to_dict()))
    else:
        shape = "x".join(str(v) for v in outcome.input_shape)
        test = "-" if result.test_accuracy is None else f"{result.test_accuracy:.4f}"
        lines = [
            ("genome", shorten(result.genome, 200) + ("" if result.effective_layers == result.genome
                                                     else f"  (built: {shorten(result.effective_layers or 'no layers', 200)})")),
            ("data set", f"{outcome.dataset}, {shape}, {outcome.num_classes} classes"),
            ("validation accuracy", f"{result.val_accuracy:.4f}" + (f"  (best epoch {result.best_epoch})" if result.best_epoch else "")),
            ("test accuracy", test),
            ("parameters", f"{result.params:,}"),
            ("FLOPs per image", f"{result.flops:,}"),
            ("epochs", f"{result.epochs}"),
            ("time", f"{result.train_time:.1f} s ({result.images_per_sec:,.0f} images/s)"),
        ]
        if result.at_chance:
            lines.append(("note", "accuracy is at chance level: the network did not learn"))
        if result.failure:
            lines.append(("FAILED", f"{result.failure_kind}: {result.failure}"))
        if outcome.save is not None:
            lines.append(("saved", ", ".join(saved) if saved else "nothing (the training failed)"))
        for name, value in lines:
            click.echo(f"{name + ':':<21}{value}")
    if result.failure:
        sys.exit(1)
