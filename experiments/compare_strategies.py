"""Is the lattice worth it? NeuralFinder against the baselines (and variants), same budget.

Runs each chosen strategy for several seeds through the real CLI (real trainer, real run store),
then `alife-nas compare` on all runs. Runs that exist already are resumed, so the script can be
stopped and started again. The default is the three strategies docs/baselines.md reports;
`--strategies all` runs every one: neuralfinder, regularized, random, ga, rl, and the variant
neuralfinder-re2 (neuralfinder with `--reevaluate 2`). Each gets only its own options. Each
instance ends with a report of the runs it made (OUT/report, or OUT/report-neuralfinder-re2 for
the variant alone); `compare` labels a variant by what makes it one (`neuralfinder-re2`), so one
`compare` over every run directory puts them all in one report.

Offline digits on CPU (what docs/baselines.md reports; about 70 minutes on 2 CPU cores):

    OMP_NUM_THREADS=1 python experiments/compare_strategies.py --out runs/compare-digits --device cpu --retrain

Every method and the re-evaluating variant at 100 trainings (docs/baselines.md, "All five
methods"; two instances side by side, about 40 minutes on 2 cores), then one report of all:

    OMP_NUM_THREADS=1 python experiments/compare_strategies.py --out runs/compare-digits --device cpu \
        --budget 100 --strategies neuralfinder,regularized,random &
    OMP_NUM_THREADS=1 python experiments/compare_strategies.py --out runs/compare-digits --device cpu \
        --budget 100 --strategies ga,rl,neuralfinder-re2
    alife-nas compare runs/compare-digits/*-s? --out runs/compare-digits/report-all --budget 100 --retrain \
        --retrain-seeds 3 --device cpu

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

#: What --strategies may name: a run name -> its strategy and the evolve options only it takes
#: (built from the parsed arguments; another strategy's option would be refused).
VARIANTS = {
    "neuralfinder": ("neuralfinder", lambda a: ["--lattice", str(a.lattice)]),
    "regularized": ("regularized", lambda a: ["--population", str(a.population), "--tournament", str(a.tournament)]),
    "random": ("random", lambda a: []),
    "ga": ("ga", lambda a: ["--population", str(a.ga_population)]),
    "rl": ("rl", lambda a: ["--controller-batch", str(a.controller_batch)]),
    "neuralfinder-re2": ("neuralfinder", lambda a: ["--lattice", str(a.lattice), "--reevaluate", "2"]),
}
#: The default: the comparison docs/baselines.md reports.
STRATEGIES = ("neuralfinder", "regularized", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare-digits")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--budget", type=int, default=150, help="trainings per run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--lattice", type=int, default=5, help="neuralfinder's lattice side (its own option)")
    parser.add_argument("--population", type=int, default=20, help="regularized evolution's population")
    parser.add_argument("--tournament", type=int, default=5, help="regularized evolution's tournament")
    parser.add_argument("--ga-population", type=int, default=20, help="the ga's population (the paper's 20)")
    parser.add_argument("--controller-batch", type=int, default=5, help="rl: genomes per controller update")
    parser.add_argument("--filters", default="16,32,64,96,128")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated, or all: {', '.join(VARIANTS)}")
    parser.add_argument("--retrain", action="store_true", help="re-train each run's best for test accuracy")
    parser.add_argument("--retrain-seeds", type=int, default=1, help="with --retrain: mean over this many re-trainings")
    parser.add_argument("--extra", action="append", default=[],
                        help="more evolve options for every strategy, e.g. --extra=--patience=5")
    args = parser.parse_args()

    names = list(VARIANTS) if args.strategies == "all" else args.strategies.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown strategies {', '.join(unknown)}; choose from {', '.join(VARIANTS)} or all")
    out = Path(args.out)
    reports: dict[str, list[str]] = {}  # report folder -> its runs: one for the strategies, one per variant
    for name in names:
        strategy, own = VARIANTS[name]
        report = "report" if name == strategy else f"report-{name}"
        for seed in args.seeds.split(","):
            run_dir = out / f"{name}-s{seed}"
            reports.setdefault(report, []).append(str(run_dir))
            if (run_dir / "run.sqlite").exists():
                # budget and device may change when a run goes on (a larger --budget extends it)
                cmd = ["resume", str(run_dir), "--budget", str(args.budget), "--device", args.device]
            else:
                cmd = ["evolve", "--out", str(run_dir), "--strategy", strategy, "--seed", seed,
                       "--dataset", args.dataset, "--budget", str(args.budget), "--preset", args.preset,
                       *own(args), "--filters", args.filters,
                       "--max-epochs", str(args.max_epochs), "--device", args.device, *args.extra]
            print(f"== {name} seed {seed}: alife-nas {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, "-m", "alife_nas", *cmd], check=True)
    for report, run_dirs in reports.items():
        compare = ["compare", *run_dirs, "--out", str(out / report), "--budget", str(args.budget)]
        if args.retrain:
            compare += ["--retrain", "--retrain-seeds", str(args.retrain_seeds), "--device", args.device]
        subprocess.run([sys.executable, "-m", "alife_nas", *compare], check=True)

if __name__ == "__main__":
    main()
