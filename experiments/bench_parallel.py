"""Parallel evaluation benchmarks: serial vs concurrent trainings, K masters, Ray's overhead.

Every comparison runs side by side in this one process and prints a ratio.

    python experiments/bench_parallel.py                      # CPU: serial vs 2 workers (1 thread each)
    python experiments/bench_parallel.py --device cuda        # GPU: serial vs 2, 4, 8 trainings on one GPU
    python experiments/bench_parallel.py --masters 3          # + a K-master search vs K = 1, equal trainings
    python experiments/bench_parallel.py --ray-overhead       # + per-training overhead: Ray vs local workers
    python experiments/bench_parallel.py --device cuda --dataset cifar10 --data-dir data   # on CIFAR-10's files

The trainings are on digits (8x8, the default) or on any data set the package loads (``--dataset
cifar10 --data-dir DIR``: CIFAR-10's own files or the look-alike experiments/gpu_check.py writes).

"serial" is the default executor (torch's own thread count); "workers N" is N worker processes
(on CPU the cores split between them). Worker start-up (spawn, import torch, load the data set)
is timed separately: it is paid once per search, not per training.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alife_nas.config import SearchConfig  # noqa: E402
from alife_nas.executors import SerialExecutor, Task, TrainingJob  # noqa: E402
from alife_nas.executors.local import LocalExecutor, default_threads  # noqa: E402

NARROW = ["16-M-32", "32-M-32", "16-16-M", "32-M-16-M", "16-M-16", "32-32", "16-32-M", "32-M-64"]


def tasks(genomes: list[str], repeat: int) -> list[Task]:
    return [Task(i, g, 1000 + i) for i, g in enumerate(genomes * repeat)]


def time_executor(executor, batch: list[Task]) -> float:
    start = time.perf_counter()
    results = list(executor.run(batch))
    elapsed = time.perf_counter() - start
    if len(results) != len(batch) or any(r["fitness"] <= 0 for _, r in results):
        raise SystemExit("a training failed: the timing would mean nothing")
    return elapsed


def serial_vs_workers(config: SearchConfig, batch: list[Task], counts: list[int], device: str, rounds: int) -> None:
    """Serial (torch's own threads, and 1 thread on CPU) vs N workers, interleaved over ``rounds``.

    Interleaving matters on a shared machine: a reference timed once, minutes apart from what it is
    compared with, measures the machine's load as much as the code. The ratios are per round; the
    median is reported.
    """
    import statistics

    import torch

    from alife_nas.data import load_data
    from alife_nas.training import Trainer

    trainer = Trainer(load_data(config.data), config.training, device)
    serial = SerialExecutor(lambda g, s, on_epoch=None: trainer.train(g, s).to_dict())
    time_executor(serial, batch[:2])  # warm-up (first-call allocations)
    default = torch.get_num_threads()
    pools = {}
    for n in counts:
        threads = default_threads(n) if device == "cpu" else None
        start = time.perf_counter()
        pools[n] = LocalExecutor(TrainingJob(config.data, config.training, device, threads), n, [device])
        time_executor(pools[n], batch[:n])  # every worker has built its trainer (start-up) and warmed up
        print(f"workers {n} ({device}, {threads or 'default'} thread(s) each): start-up {time.perf_counter() - start:.1f} s"
              " (once per search)")
    ratios: dict[str, list[float]] = {}
    for r in range(rounds):
        base = time_executor(serial, batch)
        line = [f"round {r + 1}: serial ({default} threads) {base / len(batch) * 1000:.0f} ms/training"]
        one = None
        if device == "cpu":  # the other serial reference: one thread, no intra-op parallelism
            torch.set_num_threads(1)
            one = time_executor(serial, batch)
            torch.set_num_threads(default)
            line.append(f"serial (1 thread) {one / len(batch) * 1000:.0f}")
        for n, pool in pools.items():
            elapsed = time_executor(pool, batch)
            ratios.setdefault(f"workers {n} vs serial", []).append(base / elapsed)
            if one:
                ratios.setdefault(f"workers {n} vs serial with 1 thread", []).append(one / elapsed)
            line.append(f"workers {n} {elapsed / len(batch) * 1000:.0f}")
        print(", ".join(line))
    for pool in pools.values():
        pool.close()
    for name, values in ratios.items():
        print(f"{name}: median {statistics.median(values):.2f}x (rounds: {', '.join(f'{v:.2f}' for v in values)})")


def masters_search(config: SearchConfig, masters: int, workers: int, budget: int) -> None:
    """A K-master search vs K = 1 with the same workers, until the same number of trainings."""
    from alife_nas.search import Search

    rows = []
    for k in (1, masters):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config.with_options(masters=k, workers=workers, budget=budget, steps=None, lattice=9)
            start = time.perf_counter()
            with Search.create(Path(tmp) / "run", cfg) as search:
                s = search.run()
            rows.append((k, time.perf_counter() - start, s))
    (_, base, _), (_, fast, _) = rows
    for k, elapsed, s in rows:
        print(f"masters {k}: {s.trainings} trainings in {s.step} steps, {elapsed:.1f} s, best {s.best_fitness:.4f}")
    print(f"masters {masters} vs 1 at ~{budget} trainings with {workers} workers: {base / fast:.2f}x")


def ray_overhead(n: int) -> None:
    """Milliseconds per training added by the executor: a near-free score function through each."""
    from alife_nas.executors.ray_pool import RayExecutor

    job = TrainingJob(SearchConfig().data, SearchConfig().training, score=_free_score)
    batch = [Task(i, "16", i) for i in range(n)]
    for name, make in (("local workers", lambda: LocalExecutor(job, 2)),
                       ("ray (local, 2 actors)", lambda: RayExecutor(job, "local", workers=2))):
        pool = make()
        time_executor(pool, batch[:4])
        elapsed = time_executor(pool, batch)
        pool.close()
        print(f"{name}: {elapsed / n * 1000:.2f} ms per training of a free score ({n} tasks)")


def _free_score(genome, seed):
    return {"fitness": 0.5, "epochs": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="digits", help="digits, or a data set whose files are in --data-dir (cifar10, ...)")
    parser.add_argument("--data-dir", default="data", help="where --dataset's files are (never downloaded here)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="how many times the 8 narrow genomes are trained")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measurements (median reported)")
    parser.add_argument("--workers", default=None, help="worker counts to compare, e.g. 2 or 2,4,8 "
                        "(default: 2 on CPU, 2,4,8 on a GPU)")
    parser.add_argument("--masters", type=int, default=0, help="also compare a K-master search with K = 1")
    parser.add_argument("--budget", type=int, default=120, help="trainings of each search in --masters")
    parser.add_argument("--ray-overhead", action="store_true")
    args = parser.parse_args()
    counts = [int(v) for v in (args.workers or ("2" if args.device == "cpu" else "2,4,8")).split(",")]
    config = SearchConfig.from_options(max_epochs=args.epochs, device=args.device, filters=[16, 32, 64],
                                       dataset=args.dataset, data_dir=args.data_dir)
    print(f"cores {os.cpu_count()}, device {args.device}, {args.dataset}, fast preset, {args.epochs} epochs per training",
          flush=True)
    serial_vs_workers(config, tasks(NARROW, args.repeat), counts, args.device, args.rounds)
    if args.masters:
        masters_search(config.with_options(max_epochs=2), args.masters, max(counts), args.budget)
    if args.ray_overhead:
        ray_overhead(200)


if __name__ == "__main__":
    main()
