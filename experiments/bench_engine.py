"""Engine overhead per step on a 9×9 lattice, with no training (a constant-time fake fitness).

Reports microseconds per step for the pure engine and, side by side in the same process, for the
engine driven through a real SQLite run store (what a run pays per step besides training).

    python experiments/bench_engine.py [--steps 2000] [--lattice 9]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from alife_nas.config import SearchConfig
from alife_nas.evolution import EvolutionConfig, evolve_step, initialize_lattice
from alife_nas.search import Search


def fake_fitness(step, requests):
    # Cheap and deterministic, with enough spread that all three outcomes happen.
    return [((hash(str(r.genome)) % 1000) / 1000.0) for r in requests]


def fake_score(genome, seed):
    return {"genome": str(genome), "fitness": (seed % 1000) / 1000.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lattice", type=int, default=9)
    args = parser.parse_args()

    config = EvolutionConfig(lattice=args.lattice)
    rng = np.random.default_rng(0)
    lattice, _ = initialize_lattice(config, rng, fake_fitness)
    start = time.perf_counter()
    outcomes = {}
    for step in range(1, args.steps + 1):
        outcome = evolve_step(lattice, config, rng, fake_fitness, step).outcome
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    engine_us = (time.perf_counter() - start) / args.steps * 1e6

    store_steps = min(args.steps, 300)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = f"{tmp}/run"
        with Search.create(run_dir, SearchConfig.from_options(lattice=args.lattice, steps=0), score=fake_score) as search:
            search.run()  # initialisation only
        with Search.open(run_dir, score=fake_score, steps=store_steps) as search:
            start = time.perf_counter()
            search.run()
            stored_us = (time.perf_counter() - start) / store_steps * 1e6
            assert search.steps_done == store_steps

    print(f"lattice {args.lattice}x{args.lattice}, {args.steps} steps, outcomes {outcomes}")
    print(f"engine only:            {engine_us:9.1f} us/step")
    print(f"engine + SQLite store:  {stored_us:9.1f} us/step  ({store_steps} steps, one commit per training"
          f" and per step, synchronous=FULL)")
    print(f"ratio store/engine:     {stored_us / engine_us:9.1f}x  (a single real training takes seconds)")


if __name__ == "__main__":
    main()
