"""The CUDA code paths of the trainer, and their CPU counterparts.

The CUDA tests need a GPU and are skipped without one (run ``experiments/gpu_check.py`` on a GPU
machine: it runs this file there and reports its counts). The CPU tests always run: they push a
built model through bf16 autocast and channels-last on the CPU, the same model code the GPU path
uses, and check the trainer keeps plain fp32 there.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alife_nas import training
from alife_nas.config import ConfigError
from alife_nas.data import DataSplits, load_dataset
from alife_nas.genome import parse_genome
from alife_nas.model import build_model
from alife_nas.training import Trainer, make_settings, resolve_device

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; run experiments/gpu_check.py on a GPU machine"
)

# Filters of the OOM probe's single conv: with 5 pools on 32x32 the head stays small (2**15 inputs),
# so the model builds in moments on the CPU and only the activations are huge.
OOM_FILTERS = 2**15
OOM_GENOME = f"{OOM_FILTERS}-M-M-M-M-M"


def splits(name: str, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
           test: tuple[torch.Tensor, torch.Tensor], num_classes: int = 10) -> DataSplits:
    """DataSplits from uint8 tensors, with train-only statistics like load_dataset computes."""
    flat = train[0].permute(1, 0, 2, 3).reshape(train[0].shape[1], -1).double()
    return DataSplits(
        name=name, train_x=train[0], train_y=train[1], val_x=val[0], val_y=val[1], test_x=test[0], test_y=test[1],
        num_classes=num_classes, input_shape=tuple(int(v) for v in train[0].shape[1:]),
        mean=tuple(flat.mean(1).tolist()), std=tuple(max(v, 1e-3) for v in flat.std(1).tolist()),
    )


@pytest.fixture(scope="module")
def digits3() -> DataSplits:
    """Digits with 3 different channels: channels-last is a real layout only when C > 1."""
    d = load_dataset("digits")

    def rgb(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x.flip(3), 255 - x], 1).contiguous()

    return splits("digits3", (rgb(d.train_x), d.train_y), (rgb(d.val_x), d.val_y), (rgb(d.test_x), d.test_y))


def first_conv_recorder(monkeypatch: pytest.MonkeyPatch) -> list[tuple[torch.dtype, torch.dtype, bool, bool]]:
    """Wrap the trainer's build_model so the first conv records (input dtype, output dtype, channels-last in/out)."""
    seen: list[tuple[torch.dtype, torch.dtype, bool, bool]] = []
    real = training.build_model

    def record(module, inputs, output) -> None:
        if module.training:  # training steps only; evaluation is checked through the result
            x = inputs[0]
            cl = torch.channels_last
            seen.append((x.dtype, output.dtype, x.is_contiguous(memory_format=cl), output.is_contiguous(memory_format=cl)))

    def build(*args, **kwargs):
        model = real(*args, **kwargs)
        model.features[0].register_forward_hook(record)
        return model

    monkeypatch.setattr(training, "build_model", build)
    return seen


# --- CUDA --------------------------------------------------------------------------------------
@needs_cuda
def test_cuda_training_bf16_channels_last_bf16_resident(digits3, monkeypatch):
    seen = first_conv_recorder(monkeypatch)
    trainer = Trainer(digits3, make_settings("fast", max_epochs=6), device="cuda")
    for x in (trainer.train_x, trainer.val_x, trainer.test_x):
        assert x.is_cuda and x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    assert trainer.amp and trainer.memory_format == torch.channels_last
    r = trainer.train("16-M-32-M", seed=0, evaluate_test=True)
    assert r.failure is None and r.epochs == 6
    assert r.fitness > 0.5 and not r.at_chance and r.test_accuracy > 0.5  # chance is 0.1
    # The bf16 batches reach the conv in channels-last and autocast runs the conv in bf16.
    assert seen and all(s == (torch.bfloat16, torch.bfloat16, True, True) for s in seen)


@needs_cuda
def test_cuda_training_without_amp_is_fp32_throughout(digits3):
    # amp off used to fail every training: fp16 resident data into an fp32 model without autocast
    trainer = Trainer(digits3, make_settings("fast", max_epochs=2, amp=False, deterministic=True), device="cuda")
    assert trainer.train_x.dtype == torch.float32 and not trainer.amp
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    first, again = trainer.train("16-M-32-M", seed=0), trainer.train("16-M-32-M", seed=0)
    assert first.failure is None and first.history == again.history  # deterministic cuDNN: redone alike


def oom_probe_data(images: int) -> DataSplits:
    """Random 3x32x32 images, ``images`` of them in the training split (one batch of them all)."""
    gen = torch.Generator().manual_seed(0)

    def part(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                torch.randint(0, 10, (n,), generator=gen))

    return splits("oom-probe", part(images), part(64), part(64))


@needs_cuda
def test_cuda_out_of_memory_is_recorded_and_the_next_training_works():
    # One conv of 2**15 filters on 32x32 makes 64 MiB of bf16 activations per image; a batch
    # sized from the card's memory asks for twice what the card has, whatever its size, so the
    # forward pass really raises torch.cuda.OutOfMemoryError. The caps are off (max_params=0,
    # max_memory=0) so the trainer does not refuse the genome before it allocates.
    total = torch.cuda.get_device_properties(0).total_memory
    per_image = OOM_FILTERS * 32 * 32 * 2
    batch = math.ceil(2 * total / per_image)
    trainer = Trainer(oom_probe_data(batch), make_settings("fast", max_epochs=2, batch_size=batch, max_params=0,
                                                              max_memory=0), "cuda")
    torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated()

    r = trainer.train(OOM_GENOME, seed=0)
    assert (r.fitness, r.failure_kind) == (0.0, "oom"), r.failure
    assert "out of memory" in r.failure.lower() and r.epochs == 0
    # Everything the failed training allocated was freed: only the resident data is left.
    assert torch.cuda.memory_allocated() <= resident + 64 * 2**20

    ok = trainer.train("16-M", seed=0)
    assert ok.failure is None and ok.failure_kind is None and ok.epochs == 2 and len(ok.history) == 2


@needs_cuda
def test_cuda_same_genome_and_seed_give_the_same_fitness(digits3):
    # Weights, dropout, data order and augmentation are all seeded, but cuDNN may pick
    # non-deterministic kernels (atomic adds in weight gradients) unless told not to, so bitwise
    # equality is not promised; a short training drifts at most by a boundary image.
    trainer = Trainer(digits3, make_settings("fast", max_epochs=2), "cuda")
    a = trainer.train("16-M-32-M", seed=5)
    b = trainer.train("16-M-32-M", seed=5)
    assert a.failure is None and b.failure is None
    assert abs(a.fitness - b.fitness) <= 1 / len(digits3.val_y) + 1e-12


@needs_cuda
def test_cuda_bitwise_same_with_deterministic_cudnn(digits3, monkeypatch):
    # With cuDNN restricted to deterministic algorithms every kernel of a training is
    # reproducible on one GPU (cuBLAS is on one stream), so the whole history must match.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    trainer = Trainer(digits3, make_settings("fast", max_epochs=2), "cuda")
    a = trainer.train("16-M-32-M", seed=5)
    b = trainer.train("16-M-32-M", seed=5)
    assert a.failure is None and (a.fitness, a.history) == (b.fitness, b.history)


@needs_cuda
def test_resolve_cuda_devices(digits3):
    assert resolve_device("cuda:0") == "cuda:0" and resolve_device("cuda") == "cuda"
    assert resolve_device("auto") == "cuda"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_device("cuda:99")
    trainer = Trainer(digits3, make_settings("fast", max_epochs=1), resolve_device("cuda:0"))
    assert trainer.train_x.device == torch.device("cuda:0")


# --- CPU counterparts: always run --------------------------------------------------------------
def test_missing_cuda_index_is_a_config_error_on_any_machine():
    # Without a GPU: "no CUDA device is available"; with fewer than 100: "does not exist".
    with pytest.raises(ConfigError):
        resolve_device("cuda:99")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def forward_backward(genome: str, bf16: bool, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], bool]:
    """Logits, loss, gradients and whether the features came out channels-last, for one fixed model and batch."""
    torch.manual_seed(0)
    model = build_model(parse_genome(genome), (3, 16, 16), 10, hidden=64, init="kaiming")
    model.eval()  # dropout off: the runs must see the same network
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 16, 16, generator=gen).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (8,), generator=gen)
    out_cl: list[bool] = []
    model.features.register_forward_hook(lambda m, i, o: out_cl.append(o.is_contiguous(memory_format=torch.channels_last)))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
        loss = F.cross_entropy(logits, y) + 0.01 * model.classifier.weight.float().pow(2).sum()
    loss.backward()
    grads = [p.grad.detach().float().clone() for p in model.parameters()]
    return logits.detach().float(), loss.detach().float(), grads, out_cl[0]


@pytest.mark.parametrize("bf16,channels_last", [(True, False), (False, True), (True, True)])
def test_cpu_bf16_and_channels_last_match_fp32(bf16, channels_last):
    genome = "16-M-32-32-M"
    ref_logits, ref_loss, ref_grads, _ = forward_backward(genome, False, False)
    logits, loss, grads, features_cl = forward_backward(genome, bf16, channels_last)
    assert torch.isfinite(loss) and torch.isfinite(logits).all() and all(torch.isfinite(g).all() for g in grads)
    if channels_last:
        assert features_cl  # the convs kept the layout instead of silently converting back
    # bf16 keeps 8 mantissa bits: a few percent of the logits' scale; fp32 reorderings: ~1e-5.
    tol = 0.05 if bf16 else 1e-4
    scale = ref_logits.abs().max()
    assert (logits - ref_logits).abs().max() <= tol * scale
    assert abs(loss.item() - ref_loss.item()) <= tol * max(1.0, abs(ref_loss.item()))
    for g, ref in zip(grads, ref_grads, strict=True):
        if ref.norm() > 0:
            assert F.cosine_similarity(g.flatten(), ref.flatten(), dim=0) > (0.98 if bf16 else 0.9999)


def test_cpu_trainer_keeps_plain_fp32_even_with_amp_and_channels_last_on(digits3):
    # amp and channels_last are CUDA-only knobs: on the CPU the trainer ignores them.
    trainer = Trainer(digits3, make_settings("fast", max_epochs=1, amp=True, channels_last=True), "cpu")
    assert not trainer.amp and trainer.memory_format == torch.contiguous_format
    for x in (trainer.train_x, trainer.val_x, trainer.test_x):
        assert x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
