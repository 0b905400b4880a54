"""Train one genome to a fitness (best validation accuracy), as fast as the hardware allows.

The hot loop in the spirit of the fastest CIFAR-10 trainers (docs/training.md):

* every split is moved to the device ONCE, already normalised (fp32 on CPU; fp16 and
  channels-last on CUDA), when the :class:`Trainer` is made; nothing is rebuilt per training;
* each epoch is a device-side ``randperm``; a batch is an index into the resident tensor;
* augmentation runs on the whole batch with tensor ops: integer shifts by replicate-padding
  plus one ``gather``, or (when rotations are on) one ``affine_grid`` + ``grid_sample`` doing
  rotation and shift together, and random flips by ``torch.where``;
* bf16 autocast on CUDA, plain fp32 on CPU; no DataLoader and no per-image Python anywhere.

A training is a pure function of (genome, data, settings, seed) on CPU: weights and dropout
come from torch's global RNG, seeded inside ``fork_rng`` (so the caller's RNG state is neither
used nor changed), data order and augmentation from a private ``torch.Generator``.

Any failure inside one training (over the caps, out of memory, non-finite loss, any exception)
gives fitness 0.0 with a reason; memory is freed and the next training works.
"""
from __future__ import annotations

import copy
import dataclasses
import gc
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from alife_nas.config import ConfigError, check_device
from alife_nas.contract import PRUNED, Pruned
from alife_nas.data import DataSplits
from alife_nas.genome import Genome, one_line, parse_genome
from alife_nas.inheritance import WeightPlan
from alife_nas.model import ModelInfo, build_model, inherit_weights
from alife_nas.shapes import evaluation_batch
from alife_nas.settings import PRESETS, TrainSettings, make_settings

__all__ = [
    "TrainSettings",
    "TrainResult",
    "Trainer",
    "Augmentation",
    "PRESETS",
    "FAILURE_KINDS",
    "make_settings",
    "resolve_device",
    "resident_dtype",
]

FAILURE_KINDS = ("too_large", "oom", "nonfinite", "error", PRUNED)
# Data sets whose images mean the same mirrored; flips stay off for digits, letters, house numbers.
_FLIP_AUTO = ("cifar10", "cifar100", "imagefolder")


@dataclass
class TrainResult:
    """What one training produced. ``fitness`` is the best validation accuracy, 0.0 on failure.

    ``val_accuracy`` is the best validation accuracy reached (before a failure, if any);
    ``test_accuracy`` is measured with the best epoch's weights, only when asked for.
    ``weights`` is that best epoch's state_dict (on the CPU), only when asked for
    (``keep_weights``); it is not part of :meth:`to_dict`.
    """

    genome: str
    fitness: float
    val_accuracy: float
    test_accuracy: float | None
    best_epoch: int  # 1-based; 0 when no epoch finished
    epochs: int
    train_time: float  # seconds for the whole call
    images_per_sec: float  # training images processed / train_time
    params: int
    flops: int  # forward FLOPs per image (2 per multiply-add)
    effective_layers: str
    failure: str | None = None
    failure_kind: str | None = None  # None | 'too_large' | 'oom' | 'nonfinite' | 'error'
    at_chance: bool = False
    seed: int = 0
    history: list[float] = field(default_factory=list)  # val accuracy per epoch
    inherited: int = 0  # layers that started from a parent's trained weights (--inherit-weights)
    weights: dict[str, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (every field but the weights)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "weights"}


class _NonFinite(Exception):
    pass


# --- augmentation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Augmentation:
    """Batched on-device augmentation. ``shift`` is a fraction of the side, ``rotation`` degrees.

    With rotation off, shifts are whole pixels (``max(1, round(shift * side))``), done by
    replicate-padding and one gather. With rotation on, rotation and a continuous shift share
    one ``affine_grid`` + bilinear ``grid_sample`` (border fill, like Keras' 'nearest').
    """

    shift: float = 0.0
    rotation: float = 0.0
    flip: bool = False

    @classmethod
    def from_settings(cls, settings: TrainSettings, dataset_name: str = "") -> "Augmentation":
        flip = settings.aug_flip
        if flip is None:
            flip = dataset_name.split(":")[0] in _FLIP_AUTO
        return cls(settings.aug_shift, settings.aug_rotation, bool(flip))

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.rotation > 0 or self.flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a float batch N x C x H x W; same shape and dtype out."""
        if self.rotation > 0:
            x = self._affine(x, generator)
        elif self.shift > 0:
            x = self._translate(x, generator)
        if self.flip:
            flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return x

    def _translate(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        sy, sx = (max(1, round(self.shift * side)) for side in (h, w))
        padded = F.pad(x, (sx, sx, sy, sy), mode="replicate").flatten(2)  # N x C x (H+2sy)(W+2sx)
        dev = x.device
        dy = torch.randint(0, 2 * sy + 1, (n, 1, 1), generator=generator, device=dev)
        dx = torch.randint(0, 2 * sx + 1, (n, 1, 1), generator=generator, device=dev)
        # One gather over the flattened padded image: output (i, j) reads (i + dy, j + dx).
        idx = (torch.arange(h, device=dev).view(1, h, 1) + dy) * (w + 2 * sx) + torch.arange(w, device=dev).view(1, 1, w) + dx
        return padded.gather(2, idx.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)

    def _affine(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device
        u = torch.rand(n, 3, generator=generator, device=dev) * 2 - 1
        angle = u[:, 0] * math.radians(self.rotation)
        cos, sin = angle.cos(), angle.sin()
        # affine_grid works in [-1, 1] coordinates: the side is 2 units, so a shift of
        # `shift * side` pixels is `2 * shift` units; h/w terms keep rotations rigid on non-squares.
        tx, ty = u[:, 1] * 2 * self.shift, u[:, 2] * 2 * self.shift
        theta = torch.stack([torch.stack([cos, -sin * h / w, tx], 1), torch.stack([sin * w / h, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False).to(x.dtype)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when there is a GPU, else ``cpu``; a missing CUDA device is a ConfigError."""
    check_device(name)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name} was asked for but no CUDA device is available (use cpu or auto)")
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"device {name} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


# --- the trainer -------------------------------------------------------------------------------
def resident_dtype(device_type: str, amp: bool) -> torch.dtype:
    """The dtype the normalised data sets are kept in on the device.

    bf16 on CUDA with ``amp`` (bf16 autocast casts a conv's input to bf16 anyway, so nothing is
    lost, memory and bandwidth halve, and bf16 has fp32's range: a near-constant channel
    standardised by a tiny std, up to 255 / 1e-3, cannot overflow as it would in fp16); fp32
    everywhere else, so a model that runs in fp32 gets fp32 input.
    """
    return torch.bfloat16 if device_type == "cuda" and amp else torch.float32


def _data_seed(seed: int) -> int:
    """A second stream for data order / augmentation, decorrelated from the weight seed."""
    return (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (2**63)


@dataclass
class _Progress:
    """What a training got to; survives an exception (holds no device tensors: ``weights``, a CPU
    copy, is only set once the training has finished)."""

    epochs: int = 0
    best_val: float = 0.0
    best_epoch: int = 0
    images: int = 0
    history: list[float] = field(default_factory=list)
    test_accuracy: float | None = None
    weights: dict[str, torch.Tensor] | None = None
    inherited: int = 0


def _save_weights(weights: dict[str, torch.Tensor], path: str) -> None:
    """Write a state_dict whole or not at all (a temporary file renamed into place), so a kill
    never leaves a cut-off file that a later child would start from."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    torch.save(weights, temporary)
    os.replace(temporary, target)


class Trainer:
    """Trains genomes on one data set with one set of settings; the data stays on the device."""

    def __init__(self, data: DataSplits, settings: TrainSettings, device: str = "cpu") -> None:
        device = resolve_device(str(device))  # auto -> a real device; a missing GPU is a ConfigError now
        self.data = data
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.memory_format = torch.channels_last if (self.cuda and settings.channels_last) else torch.contiguous_format
        self.dtype: torch.dtype | None = None  # the resident data's, set with the settings
        self._normalized: str | None = None
        self.settings = settings  # normalises and moves the splits (once)

    @property
    def settings(self) -> TrainSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: TrainSettings) -> None:
        """Swap settings between trainings; the resident data is redone only if its normalisation or
        dtype changes."""
        self._settings = settings
        self.amp = self.cuda and settings.amp
        if self.cuda:  # process-wide: a worker process trains with one trainer
            torch.backends.cudnn.deterministic = settings.deterministic
            torch.backends.cudnn.benchmark = not settings.deterministic  # autotuning picks per run
        self.augment = Augmentation.from_settings(settings, self.data.name)
        dtype = resident_dtype(self.device.type, settings.amp)
        if settings.normalize == self._normalized and dtype == self.dtype:
            return
        self.dtype = dtype
        data, channels = self.data, self.data.input_shape[0]
        self.mean = torch.tensor(data.mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        scale = data.std if settings.normalize == "standardize" else (255.0,) * channels
        self.scale = torch.tensor(scale, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.train_x = self.val_x = self.test_x = None  # free the old copies before making new ones
        self.train_x, self.train_y = self._put(data.train_x), data.train_y.to(self.device)
        self.val_x, self.val_y = self._put(data.val_x), data.val_y.to(self.device)
        self.test_x, self.test_y = self._put(data.test_x), data.test_y.to(self.device)
        self._normalized = settings.normalize

    def _put(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.empty(images.shape, dtype=self.dtype, device=self.device).contiguous(memory_format=self.memory_format)
        for start in range(0, len(images), 8192):  # chunks keep the fp32 temporary small
            chunk = images[start : start + 8192].to(self.device, non_blocking=True).float()
            out[start : start + 8192] = ((chunk - self.mean) / self.scale).to(self.dtype)
        return out

    def describe(self, genome: Genome | str) -> ModelInfo:
        """The genome's effective layers, parameters and FLOPs on this data set."""
        genome = parse_genome(genome) if isinstance(genome, str) else genome
        return self.settings.describe(genome, self.data.input_shape, self.data.num_classes)

    # --- public entry point ------------------------------------------------------------------
    def train(
        self,
        genome: Genome | str,
        seed: int,
        evaluate_test: bool = False,
        on_epoch: Callable[[int, int, float], None] | None = None,
        keep_weights: bool = False,
        weights: WeightPlan | None = None,
    ) -> TrainResult:
        """Train ``genome`` from ``seed``; never raises for a failed candidate (fitness 0.0).

        ``evaluate_test`` measures the test accuracy with the best validation epoch's weights;
        ``keep_weights`` returns those weights as ``result.weights`` (a CPU state_dict).
        ``weights`` (``--inherit-weights``): start from the trained layers of its sources, and save
        the best epoch's weights to its ``save_to`` (``result.inherited``: the layers copied).
        """
        start = time.perf_counter()
        genome = parse_genome(genome) if isinstance(genome, str) else genome
        info = self.describe(genome)
        result = TrainResult(
            genome=str(genome), fitness=0.0, val_accuracy=0.0, test_accuracy=None, best_epoch=0, epochs=0,
            train_time=0.0, images_per_sec=0.0, params=info.params, flops=info.flops,
            effective_layers=info.effective_layers, seed=int(seed),
        )
        reason = self.settings.size_refusal(info, len(self.train_y))
        if reason:
            result.failure, result.failure_kind = reason, "too_large"
            result.train_time = time.perf_counter() - start
            return result

        progress = _Progress()
        failure: tuple[str, str] | None = None
        try:
            devices = [self.device.index or 0] if self.cuda else []
            with torch.random.fork_rng(devices=devices):
                self._run(genome, int(seed), evaluate_test, on_epoch, progress,
                          keep_weights or bool(weights and weights.save_to), weights)
        except Exception as exc:  # one bad candidate must never end the search
            failure = _classify(exc)
        # Outside the except block the traceback (and the model it references) is gone: free it.
        if failure is not None:
            gc.collect()
            if self.cuda:
                torch.cuda.empty_cache()
            result.failure_kind, result.failure = failure
        if self.cuda:
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        result.train_time = elapsed
        result.images_per_sec = progress.images / elapsed if elapsed > 0 else 0.0
        result.epochs, result.best_epoch, result.history = progress.epochs, progress.best_epoch, progress.history
        result.val_accuracy = progress.best_val
        if failure is None:
            result.fitness = progress.best_val
            result.test_accuracy = progress.test_accuracy
            result.at_chance = progress.best_val <= 1.0 / self.data.num_classes + self.settings.chance_margin
            result.weights = progress.weights if keep_weights else None
            if weights is not None and weights.save_to and progress.weights is not None:
                _save_weights(progress.weights, weights.save_to)
        result.inherited = progress.inherited
        return result

    # --- the hot loop ------------------------------------------------------------------------
    def _run(self, genome: Genome, seed: int, evaluate_test: bool, on_epoch, progress: _Progress,
             keep_weights: bool = False, weights: WeightPlan | None = None) -> None:
        s = self.settings
        torch.manual_seed(seed % 2**63)  # inside fork_rng: weights and dropout, caller's RNG untouched
        model = build_model(genome, self.data.input_shape, self.data.num_classes, s.hidden, s.init, s.head, s.batchnorm)
        if weights is not None and weights.sources:
            sources = [(torch.load(path, map_location="cpu", weights_only=True), parse_genome(parent), pairs, head)
                       for path, parent, pairs, head in weights.sources]
            progress.inherited = inherit_weights(model, genome, sources)
        model = model.to(self.device, memory_format=self.memory_format)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(_data_seed(seed))

        if s.optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, nesterov=s.nesterov and s.momentum > 0, weight_decay=s.weight_decay)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        n = len(self.train_y)
        bs = min(s.batch_size, n)  # a batch larger than the split is the whole split
        steps_per_epoch = math.ceil(n / bs)
        if s.batchnorm and n % bs == 1 and n > 1:  # batch norm cannot train on a last batch of one image
            steps_per_epoch -= 1
        # an inherited child may train for fewer epochs (--inherited-epochs): its schedule is that short too
        max_epochs = min(s.max_epochs, weights.epochs) if weights is not None and weights.epochs else s.max_epochs
        total_steps = steps_per_epoch * max_epochs
        lr_at = _schedule(s, total_steps)
        check_each_step = not self.cuda  # a .item() per step is free on CPU, a sync on CUDA
        keep_best = evaluate_test or keep_weights  # a copy per better epoch only when someone needs it
        best_state: dict[str, torch.Tensor] | None = None
        since_best = 0
        step = 0

        for epoch in range(1, max_epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen, device=self.device)
            loss_sum = torch.zeros((), device=self.device)
            for i in range(steps_per_epoch):
                idx = perm[i * bs : (i + 1) * bs]
                x, y = self.train_x[idx], self.train_y[idx]
                if self.augment.active:
                    x = self.augment(x, gen)
                x = x.contiguous(memory_format=self.memory_format)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss = F.cross_entropy(model(x), y, label_smoothing=s.label_smoothing)
                if s.l2 > 0:  # Keras kernel_regularizer=l2(c) on the classifier only
                    loss = loss + s.l2 * model.classifier.weight.float().pow(2).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if s.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip, foreach=True)
                opt.step()
                step += 1
                progress.images += len(idx)
                if check_each_step:
                    if not math.isfinite(loss.item()):
                        raise _NonFinite(f"loss became {loss.item()} at epoch {epoch}, step {i + 1}")
                else:
                    loss_sum += loss.detach().float()
            if not check_each_step and not math.isfinite(loss_sum.item()):
                raise _NonFinite(f"loss became non-finite during epoch {epoch}")

            val = self.evaluate(model, self.val_x, self.val_y)
            progress.epochs = epoch
            progress.history.append(val)
            if val > progress.best_val or progress.best_epoch == 0:
                progress.best_val, progress.best_epoch, since_best = val, epoch, 0
                if keep_best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
            if on_epoch is not None:
                on_epoch(epoch, max_epochs, val)
            if s.patience and since_best >= s.patience:
                break

        if evaluate_test:
            if best_state is not None:
                model.load_state_dict(best_state)
            progress.test_accuracy = self.evaluate(model, self.test_x, self.test_y)
        if keep_weights and best_state is not None:
            # contiguous CPU copies: channels-last CUDA tensors would save with their strides
            progress.weights = {k: v.to("cpu").contiguous() for k, v in best_state.items()}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy of ``model`` on resident tensors (no augmentation, dropout off), in batches no
        larger than :func:`alife_nas.shapes.evaluation_batch` allows for its shapes."""
        model.eval()
        s = self.settings
        info = getattr(model, "info", None)
        chunk = s.eval_batch_size if info is None else evaluation_batch(info, s.eval_batch_size, s.max_memory)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, len(y), chunk):
            xb = x[start : start + chunk].contiguous(memory_format=self.memory_format)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = model(xb)
            correct += (logits.argmax(1) == y[start : start + chunk]).sum()
        return correct.item() / max(1, len(y))


def _schedule(s: TrainSettings, total_steps: int) -> Callable[[int], float]:
    """Learning rate for update number ``t`` (0-based)."""
    if s.lr_schedule == "constant":
        return lambda t: s.lr
    if s.lr_schedule == "time_decay":  # Keras SGD(decay=...): lr / (1 + decay * iterations)
        return lambda t: s.lr / (1.0 + s.lr_decay * t)
    warm = max(1, round(s.warmup_frac * total_steps))
    rest = max(1, total_steps - warm)

    def onecycle(t: int) -> float:  # linear up from lr*start to lr, then linear down to lr*end
        if t < warm:
            return s.lr * (s.lr_start_frac + (1 - s.lr_start_frac) * t / warm)
        return s.lr * (1 - (1 - s.lr_end_frac) * min(1.0, (t - warm) / rest))

    return onecycle


def _classify(exc: BaseException) -> tuple[str, str]:
    """(failure_kind, one-line reason) for an exception raised inside a training."""
    text = one_line(exc, None)
    if isinstance(exc, Pruned):
        return PRUNED, text
    if isinstance(exc, _NonFinite):
        return "nonfinite", text
    oom_types = (MemoryError,) + ((torch.cuda.OutOfMemoryError,) if hasattr(torch.cuda, "OutOfMemoryError") else ())
    lowered = text.lower()
    if isinstance(exc, oom_types) or "out of memory" in lowered or "can't allocate memory" in lowered:
        return "oom", f"out of memory: {one_line(text)}" if text else "out of memory"
    return "error", f"{type(exc).__name__}: {one_line(text)}"
