"""Benchmarks for the trainer (docs/training.md, "Speed"): throughput against a plain reference loop, and presets.

    python experiments/bench_trainer.py                      # throughput, CPU, 3 epochs
    python experiments/bench_trainer.py --device cuda        # same, on the GPU, unchanged
    python experiments/bench_trainer.py --dataset cifar10 --data-dir data --device cuda --deterministic-cost
                                                             # CIFAR-10 files (real or generated), + deterministic cuDNN
    python experiments/bench_trainer.py --mode presets       # fast vs paper on digits

``throughput`` trains the same genomes on the same 32x32x3 data in one process, three ways,
same model / optimiser / batch size / epochs / per-epoch validation. The data are digits
upscaled and tiled to 3 channels (``--dataset digits32``, the default: ~2.6k training images)
or any data set the package loads, read through its real loader (``--dataset cifar10
--data-dir DIR``: CIFAR-10's own files, or the look-alike ``experiments/gpu_check.py`` writes
in that format; 40k training images from 50k):

* ours:      alife_nas.training.Trainer, paper preset (rotation + shift augmentation);
* reference: what a typical NAS code base does: a torch Dataset of uint8 images, per-image
             torchvision transforms (RandomAffine(10 deg, translate 0.1) -> ToTensor ->
             Normalize), torch.utils.data.DataLoader, the same SGD + time-decay loop;
* floor:     the model alone on one resident batch, no data pipeline at all (an upper bound:
             ours / floor shows what our data pipeline and bookkeeping cost).

Each is warmed up with one short run first; images/s counts training images over wall time.
Start-up is outside the timed runs: the data are loaded and moved to the device once (the
Trainer's resident copy), the reference's DataLoaders are made once with persistent workers, and
the warm-up run spawns those workers and pays the first batches' allocations and (on CUDA)
cuDNN autotuning for every shape; a timed run is the training itself: model, epochs, validation.
Runs are interleaved and repeated; the best of the repeats is reported (medians too).

``--deterministic-cost`` also trains ours with the ``deterministic`` training setting
(deterministic cuDNN algorithms, no autotuning; a no-op on CPU), interleaved with the others
on the same data, and prints deterministic / autotuned throughput as a ratio.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from alife_nas.data import DataSplits, load_dataset  # noqa: E402
from alife_nas.genome import parse_genome  # noqa: E402
from alife_nas.model import build_model  # noqa: E402
from alife_nas.training import Trainer, TrainSettings, make_settings  # noqa: E402


def cifar_shaped(copies: int = 2, seed: int = 0) -> DataSplits:
    """Digits upscaled to 32x32, tiled to 3 channels (slightly different per channel), ~3.2k train."""
    d = load_dataset("digits")
    def up(x: torch.Tensor) -> torch.Tensor:
        big = F.interpolate(x.float(), size=(32, 32), mode="bilinear", align_corners=False)
        rgb = torch.cat([big, big.flip(3) * 0.5 + big * 0.5, 255 - big], 1)
        return rgb.clamp(0, 255).round().to(torch.uint8)
    train_x = up(d.train_x).repeat(copies, 1, 1, 1)
    train_y = d.train_y.repeat(copies)
    flat = train_x.permute(1, 0, 2, 3).reshape(3, -1).double()
    return DataSplits(
        name="digits32", train_x=train_x, train_y=train_y, val_x=up(d.val_x), val_y=d.val_y,
        test_x=up(d.test_x), test_y=d.test_y, num_classes=10, input_shape=(3, 32, 32),
        mean=tuple(flat.mean(1).tolist()), std=tuple(flat.std(1).tolist()),
    )


# --- the reference: per-image torchvision transforms through a DataLoader -----------------------
class ImageDataset(torch.utils.data.Dataset):
    """uint8 images held as HWC numpy arrays, turned into PIL images per item, as CIFAR10 does."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.x = x.permute(0, 2, 3, 1).numpy()
        self.y = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), self.y[i]


class ReferenceLoaders:
    """The reference's DataLoaders, made once per benchmark: with ``workers`` > 0 they are persistent,
    so worker processes are spawned by the first (warm-up) run and reused by every timed one."""

    def __init__(self, data: DataSplits, s: TrainSettings, device: str, workers: int) -> None:
        from torchvision import transforms as T

        mean = [m / 255 for m in data.mean]
        norm = T.Normalize(mean, [1.0] * len(mean))  # paper preset: zero mean, 0..1 scale
        train_tf = T.Compose([T.RandomAffine(s.aug_rotation, translate=(s.aug_shift, s.aug_shift)), T.ToTensor(), norm])
        eval_tf = T.Compose([T.ToTensor(), norm])
        pin = device.startswith("cuda")
        self.train = torch.utils.data.DataLoader(ImageDataset(data.train_x, data.train_y, train_tf), batch_size=s.batch_size,
                                                 shuffle=True, num_workers=workers, pin_memory=pin,
                                                 persistent_workers=workers > 0)
        self.val = torch.utils.data.DataLoader(ImageDataset(data.val_x, data.val_y, eval_tf), batch_size=s.eval_batch_size,
                                               num_workers=workers, pin_memory=pin, persistent_workers=workers > 0)


def reference_train(genome: str, data: DataSplits, s: TrainSettings, device: str, epochs: int, loaders: ReferenceLoaders,
                    seed: int = 0) -> float:
    """A typical NAS training loop; returns images/s (training images over wall time)."""
    autotuned_cudnn(device)
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = build_model(parse_genome(genome), data.input_shape, data.num_classes, s.hidden, s.init).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, nesterov=True)
    amp = device.startswith("cuda")
    step, images = 0, 0
    for _ in range(epochs):
        model.train()
        for x, y in loaders.train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for g in opt.param_groups:
                g["lr"] = s.lr / (1 + s.lr_decay * step)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x), y) + s.l2 * model.classifier.weight.float().pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            images += len(y)
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loaders.val:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    if amp:
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def autotuned_cudnn(device: str) -> None:
    """cuDNN autotuning on, as our trainer has it by default: the reference and the floor always run so
    (a Trainer with ``deterministic`` set turns it off process-wide)."""
    if device.startswith("cuda"):
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


def floor_train(genome: str, data: DataSplits, s: TrainSettings, device: str, epochs: int) -> float:
    """The model alone: same number of steps on one resident batch; images/s."""
    autotuned_cudnn(device)
    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    fmt = torch.channels_last if cuda else torch.contiguous_format
    x = torch.randn(s.batch_size, *data.input_shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, data.num_classes, (s.batch_size,), device=device)
    steps = epochs * math.ceil(len(data.train_y) / s.batch_size)
    start = time.perf_counter()
    model = build_model(parse_genome(genome), data.input_shape, data.num_classes, s.hidden, s.init).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, nesterov=True)
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    return steps * s.batch_size / (time.perf_counter() - start)


def load_bench_data(args: argparse.Namespace) -> DataSplits:
    """digits32 (built here from the bundled digits), or a data set through the package's own loader."""
    if args.dataset == "digits32":
        return cifar_shaped(args.copies)
    return load_dataset(args.dataset, args.data_dir, download=False)


def throughput(args: argparse.Namespace) -> None:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    workers = args.workers if args.workers >= 0 else (0 if device == "cpu" else min(8, os.cpu_count() or 1))
    start = time.perf_counter()
    data = load_bench_data(args)
    s = make_settings("paper", max_epochs=args.epochs, patience=0, batch_size=args.batch_size)
    warm = dataclasses.replace(s, max_epochs=1)
    s_det, warm_det = (dataclasses.replace(x, deterministic=True) for x in (s, warm))
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} data={data.name} train={len(data.train_y)} "
          f"val={len(data.val_y)} shape={data.input_shape} batch={s.batch_size} epochs={args.epochs} "
          f"aug=rotation {s.aug_rotation} deg + shift {s.aug_shift} (paper preset) reference workers={workers} repeats={args.repeats}",
          flush=True)
    # start-up, not timed: load, move the data to the device, make the loaders (workers spawn in the warm-up)
    trainer = Trainer(data, s, device)
    loaders = ReferenceLoaders(data, s, device, workers)
    print(f"start-up (not timed): data loaded and on {device}, loaders made in {time.perf_counter() - start:.1f} s", flush=True)
    for genome in args.genomes:
        # warm-up: one epoch each, so worker spawn and one-time kernel / allocator / autotuning setup are not timed
        start = time.perf_counter()
        trainer.settings = warm
        trainer.train(genome, seed=0)
        reference_train(genome, data, warm, device, 1, loaders)
        floor_train(genome, data, warm, device, 1)
        if args.deterministic_cost:
            trainer.settings = warm_det
            trainer.train(genome, seed=0)
        print(f"{genome:>16}: warm-up (not timed) {time.perf_counter() - start:.1f} s", flush=True)
        ours, ref, floor, det = [], [], [], []
        for r in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            trainer.settings = s  # autotuned cuDNN (the setter sets the process-wide cuDNN flags)
            ours.append(trainer.train(genome, seed=r).images_per_sec)
            ref.append(reference_train(genome, data, s, device, args.epochs, loaders, seed=r))
            floor.append(floor_train(genome, data, s, device, args.epochs))
            if args.deterministic_cost:
                trainer.settings = s_det
                det.append(trainer.train(genome, seed=r).images_per_sec)
        # Best of the repeats: on a shared machine, interference only ever slows a run down.
        o, f, m = max(ours), max(ref), max(floor)
        print(f"{genome:>16}: ours {o:8.0f} img/s | reference {f:8.0f} img/s | ratio {o / f:5.2f}x | "
              f"model-only floor {m:8.0f} img/s (ours = {o / m:4.0%} of floor) | medians {statistics.median(ours):.0f} / "
              f"{statistics.median(ref):.0f} / {statistics.median(floor):.0f}", flush=True)
        if args.deterministic_cost:
            d = max(det)
            print(f"{genome:>16}: deterministic {d:8.0f} img/s | autotuned {o:8.0f} img/s | ratio {d / o:5.2f}x "
                  f"(deterministic cuDNN / autotuned{', a no-op on CPU' if device == 'cpu' else ''}) | medians "
                  f"{statistics.median(det):.0f} / {statistics.median(ours):.0f}", flush=True)
    trainer.settings = s
    del loaders  # persistent workers end with their loaders


def presets(args: argparse.Namespace) -> None:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    data = load_dataset("digits")
    print(f"digits: train={len(data.train_y)} val={len(data.val_y)} test={len(data.test_y)} device={device} seeds={args.seeds}")
    Trainer(data, make_settings("fast", max_epochs=1), device).train("16-M", seed=0)  # warm-up
    for preset in ("paper", "fast"):
        trainer = Trainer(data, make_settings(preset), device)
        for genome in args.preset_genomes:
            rs = [trainer.train(genome, seed=seed, evaluate_test=True) for seed in range(args.seeds)]
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            print(f"{preset:>5} {genome:>24}: val {mean([r.fitness for r in rs]):.4f} test {mean([r.test_accuracy or 0 for r in rs]):.4f} "
                  f"epochs {mean([r.epochs for r in rs]):5.1f} time {mean([r.train_time for r in rs]):6.2f} s"
                  + (f" failures {[r.failure_kind for r in rs if r.failure_kind]}" if any(r.failure_kind for r in rs) else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("throughput", "presets"), default="throughput")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--dataset", default="digits32",
                   help="digits32 (digits upscaled to 32x32x3, built here) or a data set name the package loads, e.g. cifar10")
    p.add_argument("--data-dir", default="data", help="where --dataset's files are (never downloaded here)")
    p.add_argument("--deterministic-cost", action="store_true",
                   help="also time ours with deterministic cuDNN and print deterministic / autotuned")
    p.add_argument("--genomes", nargs="+", default=["16-M-32-M", "32-M-64-M"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--copies", type=int, default=2, help="digits32: how many times the digits train split is repeated")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per genome and loop (best and median reported)")
    p.add_argument("--workers", type=int, default=-1, help="reference DataLoader workers (-1: 0 on CPU, up to 8 on CUDA)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--seeds", type=int, default=3, help="presets mode: seeds per genome")
    p.add_argument("--preset-genomes", nargs="+", default=["16-M", "32-M-64-M", "64-64-M-128-128-M-256", "32-M-64-M-128-M-256"])
    args = p.parse_args()
    np.set_printoptions(precision=4)
    if args.threads:
        torch.set_num_threads(args.threads)
    (throughput if args.mode == "throughput" else presets)(args)


if __name__ == "__main__":
    main()
