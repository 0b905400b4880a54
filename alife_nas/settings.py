"""What a training does: every knob of the trainer, and the ``paper`` and ``fast`` presets.

Pure data (no torch), so a search's configuration can be built, validated, stored and compared
without loading the trainer. :mod:`alife_nas.training` runs these settings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from alife_nas.genome import shown
from alife_nas.shapes import INITS

__all__ = ["TrainSettings", "PRESETS", "make_settings", "stable_hash"]

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULES = ("time_decay", "onecycle", "constant")
_NORMALIZE = ("center", "standardize")


@dataclass(frozen=True)
class TrainSettings:
    """Every knob of a training. Defaults are the ``paper`` preset (docs/method.md)."""

    preset: str = "paper"
    # optimiser
    optimizer: str = "sgd"  # 'sgd' or 'adamw'
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0  # on every weight; the paper has none
    l2: float = 0.01  # Keras l2(c): loss += c * sum(classifier.weight ** 2); c is Keras' default
    # learning-rate schedule
    lr_schedule: str = "time_decay"  # Keras: lr / (1 + lr_decay * t), t = updates so far
    lr_decay: float = 1e-6
    warmup_frac: float = 0.2  # onecycle: share of updates spent rising to lr
    lr_start_frac: float = 0.1  # onecycle: starts at lr * this
    lr_end_frac: float = 0.0  # onecycle: ends at lr * this
    # budget
    batch_size: int = 128
    eval_batch_size: int = 1024
    max_epochs: int = 100
    patience: int = 10  # epochs without a better val accuracy before stopping; 0 = never stop early
    # data and augmentation
    normalize: str = "center"  # 'center': (x - mean) / 255; 'standardize': (x - mean) / std
    aug_shift: float = 0.1  # max shift, fraction of the image side (Keras width/height_shift_range)
    aug_rotation: float = 10.0  # max rotation in degrees (Keras rotation_range)
    aug_flip: bool | None = False  # random horizontal flips; None = on for cifar10/100 and imagefolder
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # clip the gradient's global norm to this; 0 = off
    # model
    hidden: int = 512
    init: str = "glorot"  # Keras' default init
    # caps: reject before building
    max_layers: int = 40
    max_params: int = 25_000_000
    # reporting
    chance_margin: float = 0.02  # at_chance when best val accuracy <= 1/classes + this
    # CUDA only
    amp: bool = True  # bf16 autocast
    channels_last: bool = True

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"training setting {name}={shown(getattr(self, name))}: {what}")

        need(self.optimizer in _OPTIMIZERS, "optimizer", f"expected one of {', '.join(_OPTIMIZERS)}")
        need(self.lr_schedule in _SCHEDULES, "lr_schedule", f"expected one of {', '.join(_SCHEDULES)}")
        need(self.normalize in _NORMALIZE, "normalize", f"expected one of {', '.join(_NORMALIZE)}")
        need(self.init in INITS, "init", f"expected one of {', '.join(INITS)}")
        for name in ("batch_size", "eval_batch_size", "max_epochs", "hidden"):
            top = _MAXIMA[name]
            need(_is_int(getattr(self, name)) and 1 <= getattr(self, name) <= top, name,
                 f"must be a whole number from 1 to {top:,}")
        for name in ("patience", "max_layers", "max_params"):
            top = _MAXIMA[name]
            need(_is_int(getattr(self, name)) and 0 <= getattr(self, name) <= top, name,
                 f"must be a whole number from 0 (off) to {top:,}")
        need(_is_num(self.lr) and self.lr > 0, "lr", "must be a positive number")
        for name in ("momentum", "weight_decay", "l2", "lr_decay", "aug_shift", "aug_rotation", "grad_clip", "chance_margin"):
            need(_is_num(getattr(self, name)) and getattr(self, name) >= 0, name, "must be a number >= 0")
        for name in ("warmup_frac", "lr_start_frac", "lr_end_frac", "label_smoothing"):
            need(_is_num(getattr(self, name)) and 0 <= getattr(self, name) <= 1, name, "must be a number in [0, 1]")
        need(self.aug_shift < 0.5, "aug_shift", "is a fraction of the image side and must be < 0.5")
        need(self.aug_rotation <= 180, "aug_rotation", "must be at most 180 degrees")
        need(self.aug_flip in (None, True, False), "aug_flip", "must be true, false or null (auto)")
        for name in ("nesterov", "amp", "channels_last"):
            need(isinstance(getattr(self, name), bool), name, "must be true or false")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every knob."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainSettings":
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are refused."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        return cls(**data)

    def fingerprint(self) -> str:
        """Short stable hash of every knob (for caches keyed on genome + settings)."""
        return stable_hash(self.to_dict())


def stable_hash(data: dict[str, Any]) -> str:
    """A short hash of a JSON-safe dict that does not depend on key order (cache keys)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


#: Upper bounds of the whole-number settings: far beyond any real use, small enough that a typo
#: (an extra digit or ten) is refused before a run starts instead of failing hours later.
_MAXIMA = {"batch_size": 1_000_000, "eval_batch_size": 1_000_000, "max_epochs": 100_000, "hidden": 1_000_000,
           "patience": 100_000, "max_layers": 10_000, "max_params": 10**12}


PRESETS: dict[str, TrainSettings] = {
    # The seed's protocol exactly (docs/method.md): SGD Nesterov 0.9, lr 0.01, Keras time decay 1e-6 per update, up to 100
    # epochs with patience 10 keeping the best, small rotations + shifts, zero-mean inputs.
    "paper": TrainSettings(),
    # Ours: a short fixed budget. He init and standardised inputs let a 5x larger peak lr work
    # on plain (no batch-norm) nets; a one-cycle schedule (warm up 20%, then linear to 0) gets
    # most of the way in few epochs; integer shifts are cheaper than rotations and help as much
    # at this budget; label smoothing and gradient clipping keep deep genomes from diverging.
    "fast": TrainSettings(
        preset="fast",
        lr=0.05,
        lr_schedule="onecycle",
        batch_size=128,
        max_epochs=12,
        patience=0,
        normalize="standardize",
        aug_shift=0.125,
        aug_rotation=0.0,
        aug_flip=None,
        label_smoothing=0.1,
        grad_clip=5.0,
        init="kaiming",
    ),
}


def make_settings(preset: str = "paper", **overrides: Any) -> TrainSettings:
    """A preset with some knobs changed; an unknown preset or knob raises ValueError naming it."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"unknown training setting {key!r}")
    return dataclasses.replace(PRESETS[preset], **overrides)
