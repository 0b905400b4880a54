"""The largest initial genomes at the seed's own input (3x32x32): size, FLOPs, memory, CPU cost.

Writes CIFAR-10 files in the real on-disk format (python pickles, as torchvision lays them out),
loads them through alife_nas's real loader, and for each network below prints its parameters,
forward FLOPs per image, the training memory alife_nas estimates (the ``max_memory`` cap's
arithmetic), the peak memory a real training of it took (the process's peak resident set
minus its resident set before the training, each training in a fresh process), and its
training time per image on this machine's CPU, with what a CIFAR-10 training (40,000 training
images, the paper preset's 100-epoch limit) would take at that speed.

    python experiments/largest_initial_genome.py [--images 1000] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (genome, head, batchnorm): the largest initial genome any strategy draws at 3x32x32 with the
#: seed's filter set (neuralfinder's one-layer ``512``; random/ga/rl draw deeper ones whose
#: dense layer is as large), its pooled twin, and the same with this tool's options.
NETWORKS = [("512", "flatten", False), ("512-M", "flatten", False), ("512", "gap", False), ("512", "gap", True)]


def child(root: str, genome: str, head: str, batchnorm: bool, threads: int) -> None:
    import torch

    from alife_nas.data import load_dataset
    from alife_nas.settings import make_settings
    from alife_nas.shapes import describe_genome, training_memory
    from alife_nas.genome import parse_genome
    from alife_nas.training import Trainer

    torch.set_num_threads(threads)
    data = load_dataset("cifar10", root, val_size=0.2, download=False)
    settings = make_settings("paper", max_epochs=1, head=head, batchnorm=batchnorm, max_memory=0)
    info = describe_genome(parse_genome(genome), data.input_shape, data.num_classes, 512, head, batchnorm)
    trainer = Trainer(data, settings, "cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    result = trainer.train(genome, seed=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"params": info.params, "flops": info.flops, "estimate": training_memory(info, settings.batch_size),
                      "peak": peak - before, "seconds": seconds, "images": len(data.train_y),
                      "failure": result.failure}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="training images written (5 batches)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from experiments.gpu_check import write_cifar10

    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(Path(tmp), per_batch=args.images // 5, test_images=200)
        print(f"{'network':<28} {'params':>12} {'GFLOP/img':>9} {'estimate':>9} {'peak':>9} {'ms/img':>7} "
              f"{'1 epoch of 40k':>14} {'100 epochs':>10}")
        for genome, head, batchnorm in NETWORKS:
            out = subprocess.run([sys.executable, __file__, "--child", tmp, genome, head, str(batchnorm),
                                  str(args.threads)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            per_image = r["seconds"] / r["images"]  # one epoch over the training split, its validation pass included
            name = f"{genome} ({head}{', batchnorm' if batchnorm else ''})"
            epoch = per_image * 40_000
            print(f"{name:<28} {r['params']:>12,} {r['flops'] / 1e9:>9.2f} {r['estimate'] / 2**30:>8.2f}G "
                  f"{r['peak'] / 2**30:>8.2f}G {1000 * per_image:>7.2f} {epoch / 60:>12.1f} m "
                  f"{100 * epoch / 3600:>8.1f} h" + (f"  FAILED: {r['failure']}" if r["failure"] else ""))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, root, genome, head, bn, threads = sys.argv
        child(root, genome, head, bn == "True", int(threads))
    else:
        main()
