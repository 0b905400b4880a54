"""What a training does: every knob of the trainer, and the ``paper`` and ``fast`` presets.

Pure data (no torch), so a search's configuration can be built, validated, stored and compared
without loading the trainer. :mod:`alife_nas.training` runs these settings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from alife_nas.genome import shown
from alife_nas.options import check_fields, option, specs
from alife_nas.genome import Genome
from alife_nas.shapes import HEADS, INITS, ModelInfo, check_caps, describe_genome
from alife_nas.validation import check_number

__all__ = ["TrainSettings", "PRESETS", "make_settings", "stable_hash"]

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULES = ("time_decay", "onecycle", "constant")
_NORMALIZE = ("center", "standardize")


def _check_aug_shift(name: str, value: Any) -> float:
    value = check_number(name, value, 0.0)
    if value >= 0.5:
        raise ValueError(f"{name} is a fraction of the image side and must be < 0.5, got {shown(value)}")
    return value


def _check_aug_flip(name: str, value: Any) -> bool | None:
    if value not in (None, True, False) or not isinstance(value, (bool, type(None))):
        raise ValueError(f"{name} must be true, false or null (auto), got {shown(value)}")
    return value


@dataclass(frozen=True)
class TrainSettings:
    """Every knob of a training. ``TrainSettings()`` is the ``fast`` preset, the one default of
    the library, the search and every command; ``PRESETS["paper"]`` is the seed's protocol
    (docs/method.md)."""

    preset: str = option("fast", "Training preset (docs/training.md): the seed's protocol (paper) or ours (fast).",
                         choices=("paper", "fast"))
    # optimiser
    optimizer: str = option("sgd", "Optimiser.", choices=_OPTIMIZERS)
    lr: float = option(0.05, "Peak learning rate.", low=0.0, low_open=True)
    momentum: float = option(0.9, "SGD momentum.", low=0.0)
    nesterov: bool = option(True, "Nesterov momentum (SGD).")
    weight_decay: float = option(0.0, "Decoupled weight decay on every weight (the paper has none).", low=0.0)
    l2: float = option(0.01, "Keras l2(c) on the classifier's weight: loss += c * sum(w ** 2).", low=0.0)
    # learning-rate schedule
    lr_schedule: str = option("onecycle", "Learning-rate schedule: Keras time decay lr / (1 + lr_decay * t), "
                              "one-cycle, or constant.", choices=_SCHEDULES)
    lr_decay: float = option(1e-6, "time_decay: decay per update.", low=0.0)
    warmup_frac: float = option(0.2, "onecycle: share of updates spent rising to lr.", low=0.0, high=1.0)
    lr_start_frac: float = option(0.1, "onecycle: starts at lr times this.", low=0.0, high=1.0)
    lr_end_frac: float = option(0.0, "onecycle: ends at lr times this.", low=0.0, high=1.0)
    # budget
    batch_size: int = option(128, "Training batch size.", low=1, high=1_000_000)
    eval_batch_size: int = option(1024, "Batch size of validation and test passes.", low=1, high=1_000_000)
    max_epochs: int = option(12, "Epoch limit of a training.", low=1, high=100_000)
    patience: int = option(0, "Early-stopping patience in epochs; 0 = never stop early.", low=0, high=100_000)
    # data and augmentation
    normalize: str = option("standardize", "Input normalisation: center ((x - mean) / 255) or standardize "
                            "((x - mean) / std).", choices=_NORMALIZE)
    aug_shift: float = option(0.125, "Random shifts, the largest as a fraction of the image side (< 0.5).",
                              check=_check_aug_shift)
    aug_rotation: float = option(0.0, "Random rotations, the largest in degrees.", low=0.0, high=180.0)
    aug_flip: bool | None = option(None, "Random horizontal flips; not given: the preset's (fast: on for "
                                   "cifar10/100 and image folders only).", kind="bool", optional=True,
                                   none_means="auto", check=_check_aug_flip)
    label_smoothing: float = option(0.1, "Label smoothing of the loss.", low=0.0, high=1.0)
    grad_clip: float = option(5.0, "Clip the gradient's global norm to this; 0 = off.", low=0.0)
    # model
    hidden: int = option(512, "Units of the dense layer of the head.", low=1, high=1_000_000)
    init: str = option("kaiming", "Weight initialisation: glorot (Keras' default), kaiming or torch.", choices=INITS)
    head: str = option("flatten", "The network's head: flatten (the seed's: the whole last map feeds the dense "
                       "layer) or gap (global average pooling first: the size no longer grows with the input).",
                       choices=HEADS)
    batchnorm: bool = option(False, "Batch normalisation after every conv, before its ReLU (not the seed's).")
    # caps: reject before building
    max_layers: int = option(40, "Refuse genomes with more layers (fitness 0); 0 = no cap.", low=0, high=10_000)
    max_params: int = option(0, "Refuse networks with more parameters (fitness 0); 0 = no cap.",
                             low=0, high=10**12)
    max_flops: int = option(0, "Refuse networks with more forward FLOPs per image, 2 per multiply-add (fitness 0); "
                            "0 = no cap.", low=0, high=10**18)
    max_memory: float = option(16.0, "Refuse networks whose training needs more than this many GiB, estimated "
                               "from their shapes (fitness 0); 0 = no cap.", low=0.0, high=2.0**20)
    # reporting
    chance_margin: float = option(0.02, "A training is at chance when its best validation accuracy is at most "
                                  "1/classes + this.", low=0.0)
    # CUDA only
    amp: bool = option(True, "CUDA: bf16 autocast.")
    channels_last: bool = option(True, "CUDA: channels-last memory layout.")
    deterministic: bool = option(False, "CUDA: deterministic cuDNN algorithms, so a training redone (after a kill) "
                                 "gives the same numbers; slower (docs/training.md).")

    def __post_init__(self) -> None:
        try:
            check_fields(self)
        except ValueError as exc:  # every message names the knob as a training setting
            raise ValueError(f"training setting {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every knob."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainSettings":
        """Inverse of :meth:`to_dict`; unknown keys are refused. A key the dict lacks (a run
        stored by a version before that knob existed) reads as the paper preset's value, which
        was the field default then, so an old run's settings, cache key and results stay its own."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        return dataclasses.replace(_STORED_DEFAULTS, **{**_BEFORE_MEMORY_CAP, **data})

    def describe(self, genome: Genome, input_shape: Any, num_classes: int) -> ModelInfo:
        """The genome's network as these settings build it (dense width, head, batch norm): its
        layers, parameters, FLOPs and kept activations on ``input_shape``, without building it."""
        return describe_genome(genome, input_shape, num_classes, self.hidden, self.head, self.batchnorm)

    def size_refusal(self, info: ModelInfo, train_images: int | None = None) -> str | None:
        """Why these settings' caps refuse the network (None: it may train). The memory cap counts
        the batch a training really uses: at most ``train_images`` when that is known."""
        batch = self.batch_size if train_images is None else min(self.batch_size, train_images)
        return check_caps(info, self.max_layers, self.max_params, self.max_memory, batch, self.max_flops)

    def hashed(self) -> dict[str, Any]:
        """:meth:`to_dict` less the knobs added later that are at the value meaning "absent"
        (:data:`_HASHED_WHEN_SET`): what cache keys hash, so a run that does not use such a knob
        keeps the settings hash it had before the knob existed (and shares its cache)."""
        return {k: v for k, v in self.to_dict().items() if k not in _HASHED_WHEN_SET or v != _HASHED_WHEN_SET[k]}

    def fingerprint(self) -> str:
        """Short stable hash of every knob (for caches keyed on genome + settings), as :meth:`hashed`."""
        return stable_hash(self.hashed())


def stable_hash(data: dict[str, Any]) -> str:
    """A short hash of a JSON-safe dict that does not depend on key order (cache keys)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


PRESETS: dict[str, TrainSettings] = {
    # The seed's protocol exactly (docs/method.md): SGD Nesterov 0.9, lr 0.01, Keras time decay 1e-6 per update, up to 100
    # epochs with patience 10 keeping the best, small rotations + shifts, zero-mean inputs, Glorot init.
    "paper": TrainSettings(
        preset="paper",
        lr=0.01,
        lr_schedule="time_decay",
        max_epochs=100,
        patience=10,
        normalize="center",
        aug_shift=0.1,
        aug_rotation=10.0,
        aug_flip=False,
        label_smoothing=0.0,
        grad_clip=0.0,
        init="glorot",
    ),
    # Ours, and the default (TrainSettings()): a short fixed budget. He init and standardised
    # inputs let a 5x larger peak lr work on plain (no batch-norm) nets; a one-cycle schedule
    # (warm up 20%, then linear to 0) gets most of the way in few epochs; integer shifts are
    # cheaper than rotations and help as much at this budget; label smoothing and gradient
    # clipping keep deep genomes from diverging; flips only where images allow them (auto).
    "fast": TrainSettings(),
}

#: What a stored run's missing training knob means: before 0.4 the field defaults were the
#: paper preset's, so a knob a run's version did not store trained with the paper value.
_STORED_DEFAULTS = PRESETS["paper"]
#: ... and a run stored before the memory cap existed had none (its head and batchnorm, missing
#: too, read as the paper preset's: flatten, off -- what every network was then).
_BEFORE_MEMORY_CAP = {"max_memory": 0.0}
#: Knobs added after settings were first hashed, with the value an older run reads them as (no cap);
#: at that value they are left out of the hashed form (:meth:`TrainSettings.hashed`). A knob added
#: later goes here with its neutral value; 0 here must be the value every preset has.
_HASHED_WHEN_SET: dict[str, Any] = {"max_flops": 0}


def make_settings(preset: str = "fast", **overrides: Any) -> TrainSettings:
    """A preset with some knobs changed; an unknown preset or knob raises ValueError naming it."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"unknown training setting {key!r}")
    return dataclasses.replace(PRESETS[preset], **overrides)


# The preset option's choices are declared before the presets exist; they must name the same ones.
assert specs(TrainSettings)["preset"].choices == tuple(PRESETS), "TrainSettings.preset choices != PRESETS"
