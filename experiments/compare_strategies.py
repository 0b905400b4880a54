"""Is the lattice worth it? NeuralFinder vs random search vs regularized evolution, same budget.

Runs every strategy for several seeds through the real CLI (real trainer, real run store), then
`alife-nas compare` on all runs. Runs that exist already are resumed, so the script can be
stopped and started again.

Offline digits on CPU (what docs/baselines.md reports; about 70 minutes on 2 CPU cores):

    OMP_NUM_THREADS=1 python experiments/compare_strategies.py --out runs/compare-digits --device cpu --retrain

The seed's protocol on CIFAR-10, one GPU (9×9 lattice, 150 steps ≈ 1,000 trainings; the
baselines get the same number of trainings):

    python experiments/compare_strategies.py --out runs/compare-cifar --dataset cifar10 \
        --budget 1000 --seeds 0,1,2 --preset paper --lattice 9 --filters 16,32,64,96,128,192,224,256,512 \
        --max-epochs 100 --device cuda --retrain
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

STRATEGIES = ("neuralfinder", "regularized", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare-digits")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--budget", type=int, default=150, help="trainings per run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--lattice", type=int, default=5, help="neuralfinder's lattice side (its own option)")
    parser.add_argument("--filters", default="16,32,64,96,128")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--retrain", action="store_true", help="re-train each run's best for test accuracy")
    parser.add_argument("--retrain-seeds", type=int, default=1, help="with --retrain: mean over this many re-trainings")
    parser.add_argument("--extra", action="append", default=[],
                        help="more evolve options for every strategy, e.g. --extra=--patience=5")
    args = parser.parse_args()

    out = Path(args.out)
    run_dirs = []
    for strategy in args.strategies.split(","):
        for seed in args.seeds.split(","):
            run_dir = out / f"{strategy}-s{seed}"
            run_dirs.append(str(run_dir))
            if (run_dir / "run.sqlite").exists():
                # budget and device may change when a run goes on (a larger --budget extends it)
                cmd = ["resume", str(run_dir), "--budget", str(args.budget), "--device", args.device]
            else:
                # a strategy's own options are refused by the others: --lattice only for neuralfinder
                own = ["--lattice", str(args.lattice)] if strategy == "neuralfinder" else []
                cmd = ["evolve", "--out", str(run_dir), "--strategy", strategy, "--seed", seed,
                       "--dataset", args.dataset, "--budget", str(args.budget), "--preset", args.preset,
                       *own, "--filters", args.filters,
                       "--max-epochs", str(args.max_epochs), "--device", args.device, *args.extra]
            print(f"== {strategy} seed {seed}: alife-nas {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, "-m", "alife_nas", *cmd], check=True)
    compare = ["compare", *run_dirs, "--out", str(out / "report"), "--budget", str(args.budget)]
    if args.retrain:
        compare += ["--retrain", "--retrain-seeds", str(args.retrain_seeds), "--device", args.device]
    subprocess.run([sys.executable, "-m", "alife_nas", *compare], check=True)


if __name__ == "__main__":
    main()
