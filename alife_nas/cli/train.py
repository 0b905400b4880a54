"""``alife-nas train GENOME --dataset NAME``: train one genome, report validation and test accuracy;
``--save DIR`` keeps the trained network (weights, a standalone predict file, ONNX with ``--onnx``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from alife_nas.cli._common import (
    UserError,
    build_config,
    config_option,
    data_options,
    device_option,
    training_options,
    user_errors,
)
from alife_nas.cli._group import main
from alife_nas.genome import shorten


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
@click.option("--download/--no-download", default=False, help="Download a missing torchvision data set into --data-dir.")
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
    from alife_nas.export import safe_target
    from alife_nas.genome import GenomeParseError, parse_genome
    from alife_nas.retraining import make_trainer, retrain

    try:
        parsed = parse_genome(genome)
    except GenomeParseError as exc:
        raise UserError(f"malformed genome: {exc}") from None
    for flag, value in (("--onnx", onnx), ("--force", force)):
        if value and save is None:
            raise UserError(f"{flag} only applies with --save")
    folder = None
    if save is not None:  # before training: a wrong folder or a missing package must not cost the training
        from alife_nas.model_export import (
            ModelExportError,
            require_onnx,
            save_trained,
            saved_files,
        )

        try:
            folder = safe_target(save, None, folder=True, files=saved_files("model", onnx=onnx), force=force)
        except ValueError as exc:
            raise UserError(f"--save {exc}") from None
        if onnx:
            try:
                require_onnx()
            except ModelExportError as exc:
                raise UserError(str(exc)) from None
    config = build_config(options)
    with user_errors():
        trainer = make_trainer(config, download=download)
    data, settings, device = trainer.data, trainer.settings, str(trainer.device)
    preset = settings.preset
    on_epoch, done = (None, lambda: None)
    if not as_json:
        click.echo(f"training {shorten(str(parsed))} on {data.name} ({len(data.train_y)} train / {len(data.val_y)} val / "
                   f"{len(data.test_y)} test) with the {preset} preset on {device}", err=True)
        on_epoch, done = _epoch_reporter(settings.max_epochs)
    try:
        result = retrain(parsed, trainer, seeds=[seed], on_epoch=on_epoch, keep_weights=folder is not None).results[0]
    finally:
        done()

    saved: list[str] = []
    if folder is not None and not result.failure:
        meta = {"device": device, "data_split": {"val_size": config.data.val_size, "split_seed": config.data.split_seed}}
        try:
            written = save_trained(folder, "model", result, data, settings, metadata=meta, onnx=onnx)
            saved = [str(Path(save) / p.name) for p in written]  # as the user named the folder
        except (OSError, ModelExportError) as exc:
            raise UserError(f"cannot save the model to {save}: {exc}") from None
    if as_json:
        extra = {"saved": saved} if folder is not None else {}
        click.echo(json.dumps({**result.to_dict(), "dataset": data.name, "preset": preset, "device": device, **extra}))
    else:
        shape = "x".join(str(v) for v in data.input_shape)
        test = "-" if result.test_accuracy is None else f"{result.test_accuracy:.4f}"
        lines = [
            ("genome", shorten(result.genome, 200) + ("" if result.effective_layers == result.genome
                                                     else f"  (built: {shorten(result.effective_layers or 'no layers', 200)})")),
            ("data set", f"{data.name}, {shape}, {data.num_classes} classes"),
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
        if folder is not None:
            lines.append(("saved", ", ".join(saved) if saved else "nothing (the training failed)"))
        for name, value in lines:
            click.echo(f"{name + ':':<21}{value}")
    if result.failure:
        sys.exit(1)
