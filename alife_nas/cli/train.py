"""``alife-nas train GENOME --dataset NAME``: train one genome, report validation and test accuracy."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from alife_nas.cli import main
from alife_nas.cli._common import UserError, config_option, load_data, resolve_device, training_overrides


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
@click.option("--dataset", default="digits", help="digits, cifar10, cifar100, mnist, fashion-mnist, svhn or imagefolder:PATH.")
@click.option("--data-dir", default="data", type=click.Path(file_okay=False), help="Where torchvision data sets live / are downloaded to.")
@click.option("--val-size", default=0.1, type=float, help="Validation split carved from the training data: a fraction (<1) or a count.")
@click.option("--split-seed", default=0, type=int, help="Seed of the validation carve.")
@click.option("--image-size", default=None, type=click.IntRange(1), help="imagefolder only: resize every image to this square size.")
@click.option("--preset", default="paper", type=click.Choice(["paper", "fast"]), help="Training preset (docs/training.md).")
@click.option("--max-epochs", type=click.IntRange(1), default=None, help="Epoch budget.  [default: the preset's]")
@click.option("--patience", type=click.IntRange(0), default=None, help="Early-stopping patience in epochs, 0 = off.  [default: the preset's]")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Training batch size.  [default: the preset's]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Peak learning rate.  [default: the preset's]")
@click.option("--max-layers", type=click.IntRange(0), default=None, help="Refuse genomes with more layers, 0 = no cap.  [default: the preset's]")
@click.option("--max-params", type=click.IntRange(0), default=None, help="Refuse networks with more parameters, 0 = no cap.  [default: the preset's]")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=0, type=int, help="Training seed (weights, data order, augmentation).")
@click.option("--download/--no-download", default=False, help="Download a missing torchvision data set into --data-dir.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (no progress output).")
@config_option
def train(genome: str, dataset: str, data_dir: str, val_size: float, split_seed: int, image_size: int | None, preset: str,
          device: str, seed: int, download: bool, as_json: bool, **options: Any) -> None:
    """Train one GENOME (compact `32-M-64` or the seed's tuple form) and report its accuracy.

    Fitness is the best validation accuracy; the test accuracy is measured with the weights of
    that best epoch. Exit code 1 when the training failed (too large, out of memory, ...).
    """
    from alife_nas.genome import GenomeParseError, parse_genome
    from alife_nas.training import Trainer, make_settings

    try:
        parsed = parse_genome(genome)
    except GenomeParseError as exc:
        raise UserError(f"malformed genome: {exc}") from None
    try:
        settings = make_settings(preset, **training_overrides(options))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    device = resolve_device(device)
    try:
        import torch

        torch.device(device)
    except RuntimeError:
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    size = val_size if val_size < 1 else int(val_size)
    data = load_data(dataset, data_dir, val_size=size, split_seed=split_seed, download=download, image_size=image_size)

    trainer = Trainer(data, settings, device)
    on_epoch, done = (None, lambda: None)
    if not as_json:
        click.echo(f"training {parsed} on {data.name} ({len(data.train_y)} train / {len(data.val_y)} val / "
                   f"{len(data.test_y)} test) with the {preset} preset on {device}", err=True)
        on_epoch, done = _epoch_reporter(settings.max_epochs)
    try:
        result = trainer.train(parsed, seed=seed, evaluate_test=True, on_epoch=on_epoch)
    finally:
        done()

    if as_json:
        click.echo(json.dumps({**result.to_dict(), "dataset": data.name, "preset": preset, "device": device}))
    else:
        shape = "x".join(str(v) for v in data.input_shape)
        test = "-" if result.test_accuracy is None else f"{result.test_accuracy:.4f}"
        lines = [
            ("genome", f"{result.genome}" + ("" if result.effective_layers == result.genome else f"  (built: {result.effective_layers or 'no layers'})")),
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
        for name, value in lines:
            click.echo(f"{name + ':':<21}{value}")
    if result.failure:
        sys.exit(1)
