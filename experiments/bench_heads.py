"""Heads and batch norm on 32×32 RGB images: the seed's flatten head against --head gap (± --batchnorm).

Writes scikit-learn's digits (1,797 8×8 grey images, values 0..16) as an image folder of 32×32
RGB PNGs (one sub-folder per class 0..9; values scaled to 0..255 uint8, upscaled with PIL's
bicubic filter, grey copied to R, G and B), then runs three NeuralFinder searches on it through
the real CLI, identical except the network options:

* flatten:  the default (the seed's head: the whole last map feeds the dense 512 layer);
* gap:      ``--head gap`` (global average pooling before the dense layer);
* gap+bn:   ``--head gap --batchnorm`` (and batch norm after every conv).

For each run it reports the share of the initial population the size caps refuse (the line
``evolve`` prints at creation), trainings, failures, the best validation accuracy and its
genome (``status --json``), the mean seconds per training (``train_seconds`` / trainings), and
the test accuracy of the best genome re-trained with 3 seeds (``export --top 1 --retrain
--retrain-seeds 3``, the run's own recipe). It ends with one Markdown table, the commands, and
the total wall time. About 30 minutes on a 2-core CPU with the defaults:

    python experiments/bench_heads.py                          # everything in a temp folder
    python experiments/bench_heads.py --work /tmp/bench-heads  # kept; existing runs are reused
    python experiments/bench_heads.py --budget 12 --max-epochs 3   # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The three configurations: name -> the network options that are the only difference.
CONFIGS = {
    "flatten": [],
    "gap": ["--head", "gap"],
    "gap+bn": ["--head", "gap", "--batchnorm"],
}
#: How the 8×8 images are upscaled (a PIL filter name) and to what size.
RESAMPLE = "BICUBIC"
SIZE = 32
REFUSED_LINE = re.compile(r"initial population: (\d+) of (\d+) genomes \((\d+)%\) exceed the size caps on (\S+) input")


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``alife-nas ARGS`` as a subprocess of this Python (the real CLI), checked."""
    return subprocess.run([sys.executable, "-m", "alife_nas", *args], check=True, **kwargs)


def write_digits(folder: Path) -> int:
    """scikit-learn's digits as FOLDER/<class>/<index>.png, 32×32 RGB; returns the image count."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    resample = getattr(Image.Resampling, RESAMPLE)
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        grey = Image.fromarray((image * (255 / 16)).round().clip(0, 255).astype("uint8"), mode="L")
        rgb = grey.resize((SIZE, SIZE), resample).convert("RGB")
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        rgb.save(folder / str(label) / f"{i:04d}.png")
    return len(digits.target)


def common_options(args: argparse.Namespace, data: Path) -> list[str]:
    """The evolve options every configuration shares."""
    return ["--dataset", f"imagefolder:{data}", "--strategy", "neuralfinder", "--preset", "fast",
            "--lattice", str(args.lattice), "--budget", str(args.budget), "--max-epochs", str(args.max_epochs),
            "--filters", args.filters, "--seed", str(args.seed), "--device", args.device, "--progress", "lines"]


def run_search(run_dir: Path, options: list[str], log: Path) -> dict:
    """Run ``evolve`` (its output echoed and kept in LOG); returns the refused share and wall time."""
    cmd = ["evolve", "--out", str(run_dir), *options]
    print(f"$ alife-nas {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "alife_nas", *cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            print("   " + line, end="", flush=True)
            out.write(line)
    if proc.wait() != 0:
        raise SystemExit(f"evolve failed with exit code {proc.returncode}: see {log}")
    return {"wall": time.perf_counter() - start, **refused_share(log)}


def refused_share(log: Path) -> dict:
    """The ``initial population: N of M genomes (P%) ...`` line of an evolve log, parsed."""
    match = REFUSED_LINE.search(log.read_text())
    if not match:
        return {"refused": None, "initial": None, "input": None}
    return {"refused": int(match[1]), "initial": int(match[2]), "input": match[4]}


def status(run_dir: Path) -> dict:
    """``status --json`` of a run."""
    return json.loads(cli("status", str(run_dir), "--json", capture_output=True, text=True).stdout)


def retrain_best(run_dir: Path, seeds: int, device: str) -> dict:
    """Re-train the run's best genome with seeds 0..SEEDS-1 (``export --retrain``); its json row."""
    out = cli("export", str(run_dir), "--top", "1", "--retrain", "--retrain-seeds", str(seeds),
              "--device", device, "--format", "json", capture_output=True, text=True).stdout
    rows = json.loads(out)
    return rows[0] if isinstance(rows, list) else rows["architectures"][0]


def measure(name: str, args: argparse.Namespace, data: Path, work: Path) -> dict:
    """One configuration: search (or reuse a finished run), status, re-training."""
    run_dir = work / f"run-{name}"
    log = work / f"evolve-{name}.log"
    options = common_options(args, data) + CONFIGS[name]
    if (run_dir / "run.sqlite").exists() and log.exists():
        print(f"== {name}: reusing {run_dir}", flush=True)
        search = {"wall": None, **refused_share(log)}
    else:
        print(f"== {name}", flush=True)
        search = run_search(run_dir, options, log)
    st = status(run_dir)
    print(f"== {name}: re-training {st['best']['genome']} with {args.retrain_seeds} seeds", flush=True)
    start = time.perf_counter()
    row = retrain_best(run_dir, args.retrain_seeds, args.device)
    return {"name": name, "options": options, "search": search, "status": st, "export": row,
            "retrain_wall": time.perf_counter() - start}


def table(results: list[dict]) -> str:
    """One Markdown row per configuration."""
    head = ["config", "refused at creation", "trainings", "failures", "best val acc", "best genome",
            "s / training", "test acc (mean)", "test acc (seeds 0, 1, 2)", "search wall", "re-train wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s, st, ex = r["search"], r["status"], r["export"]
        refused = f"{s['refused']} of {s['initial']} ({100 * s['refused'] / s['initial']:.0f}%)" if s["initial"] else "?"
        per = st["train_seconds"] / st["trainings"] if st["trainings"] else float("nan")
        tests = ex.get("test_accuracies") or []
        wall = f"{s['wall'] / 60:.1f} min" if s["wall"] is not None else "reused"
        lines.append("| " + " | ".join([
            r["name"], refused, str(st["trainings"]), str(st["failures"]), f"{st['best']['fitness']:.4f}",
            f"`{st['best']['genome']}`", f"{per:.1f}", f"{ex['test_accuracy']:.4f}",
            ", ".join(f"{t:.4f}" for t in tests), wall, f"{r['retrain_wall'] / 60:.1f} min"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="folder for the image folder, runs and logs [default: a new temp folder]")
    parser.add_argument("--budget", type=int, default=20, help="trainings per search")
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--lattice", type=int, default=3)
    parser.add_argument("--filters", default="16,32,64,128")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    args = parser.parse_args()

    start = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-heads-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ALIFE_NAS_CACHE", str(work / "cache"))  # the decoded-folder cache stays here too
    data = work / "digits32"
    if not data.exists():
        count = write_digits(data)
        print(f"wrote {count} images to {data} ({SIZE}×{SIZE} RGB, PIL {RESAMPLE.lower()})", flush=True)
    results = [measure(name, args, data, work) for name in args.configs.split(",")]

    print("\n## Heads on digits, 32×32 RGB\n")
    print(table(results))
    print(f"\nData: sklearn digits, 1,797 images, 0..16 scaled to 0..255, PIL {RESAMPLE.lower()} to "
          f"{SIZE}×{SIZE}, RGB; {data}")
    print("Commands (the same for all but the network options):")
    for r in results:
        print(f"    alife-nas evolve --out {work / ('run-' + r['name'])} {' '.join(r['options'])}")
    print(f"    alife-nas export RUN --top 1 --retrain --retrain-seeds {args.retrain_seeds} --device {args.device} "
          f"--format json")
    spread = [max(t) - min(t) for r in results if (t := r["export"].get("test_accuracies"))]
    if spread:
        print(f"Spread of the {args.retrain_seeds} seeds (max - min): "
              + ", ".join(f"{r['name']} {100 * s:.2f} points" for r, s in zip(results, spread))
              + f" (mean {100 * statistics.mean(spread):.2f})")
    print(f"Total wall time: {(time.perf_counter() - start) / 60:.1f} min ({work})")


if __name__ == "__main__":
    main()
