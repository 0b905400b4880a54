"""What stopping weak candidates saves: search cost and result with and without --prune.

Runs real searches through the CLI on two inputs, each configuration with several run seeds:

* ``digits``:   scikit-learn's digits (8×8 grey) as bundled;
* ``digits32``: the same images written as an image folder of 32×32 RGB PNGs (bench_heads.py).

Configurations (everything else equal within a data set):

* ``nf-full``     neuralfinder, every candidate trained in full (the seed's protocol);
* ``nf-halving``  neuralfinder ``--prune halving`` (a step's candidates to the rung, the best on);
* ``nf-inherit``  neuralfinder ``--inherit-weights --inherited-epochs 0.5`` (a child starts from its
                  parents' trained layers and trains half the epochs);
* ``nf-both``     both;
* ``re-full``     regularized evolution on a training budget, every training in full (digits only);
* ``re-median``   regularized evolution ``--prune median``; ``re-inherit``, ``re-both`` as above
                  (digits only).

For every run: trainings, epochs trained, training FLOPs (``status --json``: forward FLOPs ×
training images × 3 per epoch, summed), the best validation accuracy, and the test accuracy of
its best genome re-trained with fresh seeds (``export --top 1 --retrain``). For halving it also
measures, on every step of the ``nf-full`` runs, whether the step would have decided the same
(outcome, winner and max_c) had it halved its candidates: the full runs store every candidate's
whole validation curve, and on the CPU a training stopped at the rung has exactly the first
epochs of the full one (same seed), so that counterfactual is exact, not a model. The same
replay at every possible rung is the measurement the default rung was chosen from.

    python experiments/bench_search_cost.py                       # both data sets, 5 seeds, a temp folder
    python experiments/bench_search_cost.py --work /tmp/cost      # kept; finished runs are reused
    python experiments/bench_search_cost.py --datasets digits --seeds 3
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_heads import write_digits  # noqa: E402  (the one writer of the 32×32 digits folder)

#: Per data set: the options every configuration shares, and each configuration's own.
DATASETS = {
    "digits": ["--dataset", "digits", "--filters", "16,32,64", "--preset", "fast", "--max-epochs", "8"],
    "digits32": ["--filters", "8,16,32", "--preset", "fast", "--max-epochs", "4"],
}
SEARCH = {
    "digits": {"nf": ["--lattice", "3", "--steps", "8"], "re": ["--budget", "30", "--population", "8",
                                                                 "--tournament", "3"]},
    "digits32": {"nf": ["--lattice", "3", "--steps", "4"], "re": ["--budget", "20", "--population", "6",
                                                                   "--tournament", "2"]},
}
INHERIT = ["--inherit-weights", "--inherited-epochs", "0.5"]
CONFIGS = {
    "nf-full": ("nf", ["--strategy", "neuralfinder"]),
    "nf-halving": ("nf", ["--strategy", "neuralfinder", "--prune", "halving"]),
    "nf-inherit": ("nf", ["--strategy", "neuralfinder", *INHERIT]),
    "nf-both": ("nf", ["--strategy", "neuralfinder", "--prune", "halving", *INHERIT]),
    "re-full": ("re", ["--strategy", "regularized"]),
    "re-median": ("re", ["--strategy", "regularized", "--prune", "median"]),
    "re-inherit": ("re", ["--strategy", "regularized", *INHERIT]),
    "re-both": ("re", ["--strategy", "regularized", "--prune", "median", *INHERIT]),
}
#: The configurations run on the 32×32 folder (each of its trainings costs ~10x a digits one).
CONFIGS_32 = ("nf-full", "nf-halving", "nf-inherit", "nf-both")


def cli(*args: str) -> str:
    """``alife-nas ARGS`` as a subprocess of this Python (the real CLI); its stdout."""
    proc = subprocess.run([sys.executable, "-m", "alife_nas", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"alife-nas {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def options(dataset: str, config: str, seed: int, data: Path, device: str) -> list[str]:
    kind, own = CONFIGS[config]
    source = ["--dataset", f"imagefolder:{data}"] if dataset == "digits32" else []
    return [*source, *DATASETS[dataset], *SEARCH[dataset][kind], *own, "--seed", str(seed), "--device", device,
            "--threads", "1", "--progress", "lines"]


def measure(run_dir: Path, opts: list[str], retrain_seeds: int, device: str) -> dict:
    """One run (reused when finished before): its status and its best genome re-trained."""
    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    if run_dir.exists():  # an unfinished earlier attempt: go on where it stopped
        cli("resume", str(run_dir), "--progress", "lines")
    else:
        cli("evolve", "--out", str(run_dir), *opts)
    status = json.loads(cli("status", str(run_dir), "--json"))
    rows = json.loads(cli("export", str(run_dir), "--top", "1", "--retrain", "--retrain-seeds", str(retrain_seeds),
                          "--device", device, "--format", "json"))
    row = rows[0] if isinstance(rows, list) else rows["architectures"][0]
    result = {"status": {k: status[k] for k in ("trainings", "pruned", "epochs", "train_flops", "best")},
              "test": row["test_accuracy"], "tests": row.get("test_accuracies")}
    done.write_text(json.dumps(result))
    return result


def replay_halving(run_dir: Path, rung: int) -> tuple[int, int, int, int]:
    """Replay every step of a full neuralfinder run as if it had halved its candidates at ``rung``.

    Returns (steps deciding alike, steps, epochs the steps' candidates would have cost, epochs
    they cost). The candidates trained in the step (not cache hits) go to the rung, ranked with
    the cached ones by their best validation in the first ``rung`` epochs; the first best goes
    on in full (from the start: the rung's epochs again). Alike = same outcome, winner and max_c.
    """
    from alife_nas.evolution import is_better
    from alife_nas.store import RunStore

    with RunStore.open(run_dir, readonly=True) as store:
        config, rows = store.config.method, store.step_rows()
        first = {ev.genome: ev for ev in reversed(store.evaluations())}  # each genome's (first) training
        alike = steps = cost = full_cost = 0
        for row in rows[1:]:
            record = row.record
            new = {g for g, ev in first.items() if ev.step == row.step and ev.operator != "mutant"}
            cands = record["candidates"]
            at_rung = [max(first[c["genome"]].history[:rung], default=c["fitness"]) for c in cands]
            survivor = max(range(len(cands)), key=lambda i: (at_rung[i], -i))
            scores = [c["fitness"] if c["genome"] not in new or c["genome"] == cands[survivor]["genome"] else 0.0
                      for c in cands]
            best = max(range(len(cands)), key=lambda i: (scores[i], -i))
            winner, max_c = cands[best]["genome"], scores[best]
            if winner == record["master_genome"] or not is_better(max_c, record["master_fitness"], config.ratio,
                                                                  config.better_by):
                outcome = "no_change"
            elif winner != record["partner_genome"] and is_better(max_c, record["partner_fitness"], config.ratio,
                                                                  config.better_by):
                outcome = "replace_both"
            else:
                outcome = "replace_master"
            same_winner = outcome == "no_change" or winner == cands[record["best_index"]]["genome"]
            alike += (outcome, max_c) == (record["outcome"], record["max_c"]) and same_winner
            steps += 1
            epochs = {g: first[g].epochs or 0 for g in new}
            full_cost += sum(epochs.values())
            went_on = cands[survivor]["genome"] in new
            cost += sum(min(rung, e) for e in epochs.values()) + (epochs[cands[survivor]["genome"]] if went_on else 0)
    return alike, steps, cost, full_cost


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(dataset: str, results: dict[str, list[dict]], agreement: dict[str, str]) -> str:
    lines = [f"### {dataset}", "",
             "| configuration | runs | trainings (pruned) | epochs | training FLOPs | compute vs full | "
             "best validation | re-trained test | step decided as with full training |",
             "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for config, runs in results.items():
        if not runs:
            continue
        reference = results.get("nf-full" if config.startswith("nf") else "re-full") or []
        flops = [r["status"]["train_flops"] or 0 for r in runs]
        ref_flops = statistics.mean(r["status"]["train_flops"] or 0 for r in reference) if reference else math.nan
        trainings = statistics.mean(r["status"]["trainings"] for r in runs)
        pruned = statistics.mean(r["status"].get("pruned") or 0 for r in runs)
        lines.append(
            f"| {config} | {len(runs)} | {trainings:.1f} ({pruned:.1f}) | "
            f"{statistics.mean(r['status']['epochs'] for r in runs):.0f} | {statistics.mean(flops):.3g} | "
            f"{statistics.mean(flops) / ref_flops:.2f} | "
            f"{mean_sd([r['status']['best']['fitness'] for r in runs])} | {mean_sd([r['test'] for r in runs])} | "
            f"{agreement.get(config, '-')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", help="folder for the data, runs and results [default: a new temp folder]")
    parser.add_argument("--datasets", default="digits,digits32")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seeds32", type=int, default=5, help="run seeds on the 32×32 folder")
    parser.add_argument("--retrain-seeds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-search-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ALIFE_NAS_CACHE", str(work / "cache"))
    data = work / "digits32-images"  # not the runs' folder: an image folder's subfolders are its classes
    start = time.perf_counter()
    report = []
    for dataset in args.datasets.split(","):
        if dataset == "digits32" and not data.exists():
            write_digits(data)
        configs = CONFIGS_32 if dataset == "digits32" else tuple(CONFIGS)
        seeds = args.seeds32 if dataset == "digits32" else args.seeds
        results: dict[str, list[dict]] = {c: [] for c in configs}
        for seed in range(seeds):
            for config in configs:
                run_dir = work / dataset / f"{config}-s{seed}"
                print(f"== {dataset} {config} seed {seed}", flush=True)
                results[config].append(measure(run_dir, options(dataset, config, seed, data, args.device),
                                               args.retrain_seeds, args.device))
        full_runs = [work / dataset / f"nf-full-s{seed}" for seed in range(seeds)]
        epochs = max(1, max(len(ev.history) for ev in _evaluations(full_runs[0])))
        from alife_nas.evaluation import halving_rung

        rungs = []
        for rung in range(1, epochs):
            alike = steps = cost = full = 0
            for run_dir in full_runs:
                a, s, c, f = replay_halving(run_dir, rung)
                alike, steps, cost, full = alike + a, steps + s, cost + c, full + f
            rungs.append((rung, alike, steps, cost, full))
        chosen = next(r for r in rungs if r[0] == halving_rung(epochs))
        agreement = {"nf-halving": f"{chosen[1]}/{chosen[2]} ({chosen[1] / chosen[2]:.0%}) at rung {chosen[0]}"}
        report.append(table(dataset, results, agreement))
        report.append("")
        report.append(f"Halving replayed on the steps of the {len(full_runs)} nf-full runs ({epochs} epochs a training):")
        report.append("")
        report.append("| rung (epoch) | steps decided as with full training | candidates' epochs vs full |")
        report.append("|---:|---:|---:|")
        for rung, alike, steps, cost, full in rungs:
            mark = " (default)" if rung == chosen[0] else ""
            report.append(f"| {rung}{mark} | {alike}/{steps} ({alike / steps:.0%}) | {cost / full:.2f} |")
        report.append("")
    print("\n".join(report))
    print(f"\ntotal wall time {(time.perf_counter() - start) / 60:.1f} min; runs in {work}")


def _evaluations(run_dir: Path) -> list:
    from alife_nas.store import RunStore

    with RunStore.open(run_dir, readonly=True) as store:
        return store.evaluations()


if __name__ == "__main__":
    main()
