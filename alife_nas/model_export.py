"""A trained network a user can ship: its weights, a standalone predict file, ONNX.

:func:`save_trained` writes, for one training that kept its weights (``Trainer.train(...,
keep_weights=True)``), ``NAME.pt`` -- the state_dict of the best validation epoch, the weights
whose test accuracy was reported; it loads with ``torch.load(path, weights_only=True)`` -- next
to ``NAME.py``, :func:`alife_nas.pytorch_source.pytorch_source` with a :class:`~alife_nas.pytorch_source.ModelCard`:
a file that imports only torch and offers ``load()`` and ``predict(images)``, with the data set's
normalisation, the class names and the recipe embedded; and ``NAME.onnx`` on request.

:func:`write_onnx` exports a network with torch's ONNX exporter (``torch.onnx.export``, the
``torch.export``-based "dynamo" exporter, torch's default since 2.9; it needs the ``onnx`` and
``onnxscript`` packages: the ``onnx`` extra). A trained network's graph takes images in 0..255
(float32, N x C x H x W, any batch size) and normalises inside; an untrained one (architecture
only, random weights) takes the already normalised tensor. Both output logits and carry the
recipe as ``metadata_props``. :func:`export_models` writes a run's exported folder (pytorch or
onnx, trained after a re-training or not).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from alife_nas.data import DataSplits
from alife_nas.export import write_architecture
from alife_nas.files import write_atomically
from alife_nas.genome import Genome, one_line, parse_genome
from alife_nas.model import build_model
from alife_nas.pytorch_source import ModelCard, model_files, pytorch_source
from alife_nas.settings import TrainSettings

__all__ = [
    "ModelExportError",
    "OnnxUnavailable",
    "ONNX_INSTALL",
    "require_onnx",
    "normalization",
    "model_card",
    "saved_files",
    "save_trained",
    "write_onnx",
    "export_models",
]

ONNX_INSTALL = 'pip install "alife-nas[onnx]"'
#: The ONNX format keeps a model's weights inside the file only up to 2 GB (protobuf's limit).
_ONNX_MAX_BYTES = 2**31 - 2**24


class ModelExportError(Exception):
    """A model cannot be saved or exported; the message is one line for the user."""


class OnnxUnavailable(ModelExportError):
    """The packages the ONNX exporter needs are not installed."""


def require_onnx() -> None:
    """Raise :class:`OnnxUnavailable` (one line) unless onnx and onnxscript can be imported."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxUnavailable(f"ONNX export needs the {' and '.join(missing)} package"
                              f"{'s' if len(missing) > 1 else ''}: {ONNX_INSTALL}")


def normalization(data: DataSplits, settings: TrainSettings) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, scale) per channel in 0..255 units: the trainer's input is ``(image - mean) / scale``."""
    scale = data.std if settings.normalize == "standardize" else (255.0,) * len(data.mean)
    return tuple(float(v) for v in data.mean), tuple(float(v) for v in scale)


def saved_files(name: str, *, onnx: bool = False) -> list[str]:
    """The file names :func:`save_trained` writes for ``name``: NAME.py, NAME.pt (and NAME.onnx)."""
    return model_files(name, "pytorch", trained=True) + (model_files(name, "onnx") if onnx else [])


def model_card(result: Any, data: DataSplits, settings: TrainSettings, *, weights_file: str,
               metadata: Mapping[str, Any] | None = None) -> ModelCard:
    """What the files of a trained ``result`` (a TrainResult) embed: classes, normalisation, recipe."""
    from alife_nas import __version__

    mean, scale = normalization(data, settings)
    classes = tuple(str(c) for c in data.classes) if data.classes else tuple(str(i) for i in range(data.num_classes))
    meta: dict[str, Any] = {
        "genome": result.genome,
        "effective_layers": result.effective_layers,
        "dataset": data.name,
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "normalize": settings.normalize,
        "preset": settings.preset,
        "seed": result.seed,
        "val_accuracy": result.val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "test_accuracy": result.test_accuracy,
        "params": result.params,
        "flops": result.flops,
        "train_time": round(float(result.train_time), 3),
        "settings": settings.to_dict(),
        "alife_nas": __version__,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(metadata or {})
    return ModelCard(classes=classes, mean=mean, scale=scale, weights_file=weights_file, metadata=meta)


def _state_bytes(weights: Mapping[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, buffer)
    return buffer.getvalue()


def save_trained(folder: str | Path, name: str, result: Any, data: DataSplits, settings: TrainSettings, *,
                 metadata: Mapping[str, Any] | None = None, onnx: bool = False) -> list[Path]:
    """Write NAME.py and NAME.pt (and NAME.onnx) for a training that kept its weights; their paths, in that order.

    ``result`` is a TrainResult from ``Trainer.train(..., keep_weights=True)``; ``metadata`` is
    added to the recipe the files carry (run, rank, data split, ...). Each file is written whole
    or not at all.
    """
    if getattr(result, "weights", None) is None:
        raise ModelExportError(f"{result.genome}: the training kept no weights"
                               + (f" (it failed: {result.failure})" if result.failure else ""))
    if onnx:
        require_onnx()
    folder = Path(folder)
    py_name, pt_name, *onnx_name = saved_files(name, onnx=onnx)
    card = model_card(result, data, settings, weights_file=pt_name, metadata=metadata)
    source = pytorch_source(result.genome, data.input_shape, data.num_classes, name, hidden=settings.hidden,
                            init=settings.init, head=settings.head, batchnorm=settings.batchnorm, card=card)
    folder.mkdir(parents=True, exist_ok=True)
    # The weights first: a .py is never there without the weights it loads.
    weights = write_atomically(folder / pt_name, _state_bytes(result.weights))
    written = [write_atomically(folder / py_name, source), weights]
    if onnx:
        written.append(write_onnx(folder / onnx_name[0], result.genome, data.input_shape, data.num_classes,
                                  hidden=settings.hidden, init=settings.init, head=settings.head,
                                  batchnorm=settings.batchnorm, weights=result.weights, card=card))
    return written


class _Normalizing(nn.Module):
    """Images in 0..255 -> ``(image - mean) / scale`` per channel -> the network: one ONNX graph."""

    def __init__(self, net: nn.Module, mean: Sequence[float], scale: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.scale)


def _onnx_metadata(card: ModelCard | None, genome: Genome, input_shape: Sequence[int], num_classes: int) -> dict[str, str]:
    """metadata_props (strings only): what the graph expects and what the network is."""
    c, h, w = (int(v) for v in input_shape)
    if card is None:
        meta: dict[str, Any] = {"genome": str(genome), "input_shape": [c, h, w], "num_classes": num_classes,
                                "trained": False,
                                "input": f"normalized_images: float32 N x {c} x {h} x {w}, already normalised",
                                "weights": "random initialisation (untrained: the architecture only)"}
    else:
        meta = {**card.metadata, "trained": True, "classes": list(card.classes), "mean": list(card.mean),
                "scale": list(card.scale),
                "input": f"images: float32 N x {c} x {h} x {w} in 0..255; normalised inside the graph as "
                         f"(images - mean) / scale per channel"}
    meta["output"] = f"logits: float32 N x {num_classes}"
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def write_onnx(path: str | Path, genome: Genome | str, input_shape: Sequence[int], num_classes: int, *,
               hidden: int = 512, init: str = "glorot", head: str = "flatten", batchnorm: bool = False,
               weights: Mapping[str, torch.Tensor] | None = None,
               card: ModelCard | None = None) -> Path:
    """Export the genome's network to ONNX at ``path`` (written whole or not at all).

    With ``weights`` and ``card`` (a trained network) the graph's input ``images`` is float32
    N x C x H x W in 0..255 and the card's normalisation is part of the graph; without them the
    weights are a random initialisation (seed 0) and the input ``normalized_images`` is what
    the network itself takes. The output is ``logits``; the batch size is free.
    """
    require_onnx()
    g = parse_genome(genome) if isinstance(genome, str) else genome
    shape = tuple(int(v) for v in input_shape)
    if (weights is None) != (card is None):
        raise ValueError("a trained ONNX export needs both the weights and the model card")
    with torch.random.fork_rng(devices=[]):  # repeatable random weights; the caller's RNG untouched
        torch.manual_seed(0)
        net = build_model(g, shape, num_classes, hidden, init, head, batchnorm)
    if 4 * sum(p.numel() for p in net.parameters()) > _ONNX_MAX_BYTES:
        raise ModelExportError(f"{g}: the network's weights exceed the 2 GB an ONNX file can hold")
    if weights is not None:
        net.load_state_dict(weights)
    module, input_name = (net, "normalized_images") if card is None else (_Normalizing(net, card.mean, card.scale), "images")
    module.eval()
    batch = torch.export.Dim("batch")
    try:
        # Some exporter versions print progress on stdout; stdout belongs to the command's output.
        with contextlib.redirect_stdout(sys.stderr), torch.no_grad():
            program = torch.onnx.export(module, (torch.zeros(2, *shape),), dynamo=True, input_names=[input_name],
                                        output_names=["logits"], dynamic_shapes=({0: batch},), external_data=False,
                                        verbose=False)
        program.model.metadata_props.update(_onnx_metadata(card, g, shape, num_classes))
        program.model.doc_string = (f"alife-nas network {g}, "
                                    + ("trained" if card is not None else "untrained (random initialisation)"))
        buffer = io.BytesIO()
        program.save(buffer, external_data=False)
    except ModelExportError:
        raise
    except Exception as exc:  # the exporter's errors are long; one line for the user
        raise ModelExportError(f"ONNX export of {g} failed: {type(exc).__name__}: {one_line(exc)}") from None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, buffer.getvalue())


def export_models(rows: Sequence[Mapping[str, Any]], fmt: str, folder: str | Path, *, input_shape: Sequence[int],
                  num_classes: int, hidden: int = 512, init: str = "glorot", head: str = "flatten",
                  batchnorm: bool = False, retrainings: Sequence[Any] | None = None,
                  data: DataSplits | None = None, settings: TrainSettings | None = None,
                  metadata: Mapping[str, Any] | None = None) -> list[Path]:
    """Write exported rows as ``fmt`` ('pytorch' or 'onnx') files into ``folder``, one per rank.

    With ``retrainings`` (one :class:`~alife_nas.retraining.Retraining` per row, made with
    ``keep_weights``, plus the ``data`` and ``settings`` they trained with) each architecture is
    saved TRAINED: its best seed's weights (:attr:`Retraining.best`): 'pytorch' writes
    ``rank_N.py`` + ``rank_N.pt``, 'onnx' writes ``rank_N.onnx``. Without, or for an
    architecture whose every re-training failed, the files are the untrained architecture.
    """
    if fmt not in ("pytorch", "onnx"):
        raise ValueError(f"{fmt!r} is not a model export format; expected pytorch or onnx")
    if retrainings is not None and (len(retrainings) != len(rows) or data is None or settings is None):
        raise ValueError("a trained export needs one retraining per row and the data and settings they used")
    if fmt == "onnx":
        require_onnx()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, row in enumerate(rows):
        name = f"rank-{row['rank']}"
        best = retrainings[i].best if retrainings is not None else None
        if best is not None and best.weights is not None:
            assert data is not None and settings is not None
            meta = {"rank": row["rank"], "search_fitness": row.get("fitness"), **(metadata or {}),
                    "retrain_seeds": retrainings[i].seeds, "test_accuracies": retrainings[i].test_accuracies,
                    "test_accuracy_mean": retrainings[i].test_accuracy}
            if fmt == "pytorch":
                written += save_trained(folder, name, best, data, settings, metadata=meta)
            else:
                card = model_card(best, data, settings, weights_file="", metadata=meta)
                written.append(write_onnx(folder / model_files(name, "onnx")[0], row["genome"], input_shape,
                                          num_classes, hidden=hidden, init=init, head=head, batchnorm=batchnorm,
                                          weights=best.weights, card=card))
        elif fmt == "pytorch":
            note = "Its re-training failed: no trained weights." if retrainings is not None else None
            written.append(write_architecture(folder, row, input_shape, num_classes, hidden=hidden, init=init,
                                              head=head, batchnorm=batchnorm,
                                              note=note))
        else:
            written.append(write_onnx(folder / model_files(name, "onnx")[0], row["genome"], input_shape,
                                      num_classes, hidden=hidden, init=init, head=head, batchnorm=batchnorm))
    return written
