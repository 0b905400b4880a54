"""How much of each strategy's initial population the size caps refuse, by input size and head.

Shape arithmetic only (no training, no torch for the built-in strategies but rl): for every
built-in strategy, input shape and head, the run's own initial genomes (``alife_nas.feasibility``,
as a run with that seed would draw them) over several seeds, with the paper preset and the
seed's filter set, checked against the caps -- the defaults (a 16 GiB estimated training memory,
no parameter cap) and, for comparison, the 25,000,000-parameter cap that was the default before.

    python experiments/initial_refusals.py [--seeds 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alife_nas.config import SearchConfig  # noqa: E402
from alife_nas.feasibility import check_initial_population  # noqa: E402

STRATEGIES = ["neuralfinder", "random", "regularized", "ga", "rl"]
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 128, 128)]
CAPS = {"default caps": {}, "old 25M-param cap": {"max_params": 25_000_000, "max_memory": 0.0}}


def refused_share(strategy: str, shape: tuple[int, int, int], head: str, caps: dict, seeds: int) -> tuple[int, int]:
    refused = total = 0
    for seed in range(seeds):
        options = dict(strategy=strategy, preset="paper", seed=seed, head=head, **caps)
        if strategy == "neuralfinder":
            options["lattice"] = 9  # the seed's lattice
        found = check_initial_population(SearchConfig.from_options(**options), shape, 10)
        refused, total = refused + found.refused, total + found.total
    return refused, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="runs drawn per strategy (rl: a quarter)")
    args = parser.parse_args()
    shapes = ["×".join(map(str, s)) for s in SHAPES]
    print("| strategy | caps | head | " + " | ".join(shapes) + " |")
    print("|---|---|---|" + "---:|" * len(SHAPES))
    for strategy in STRATEGIES:
        seeds = max(1, args.seeds // 4) if strategy == "rl" else args.seeds
        for caps_name, caps in CAPS.items():
            for head in ("flatten", "gap"):
                if caps_name != "default caps" and head == "gap":
                    continue
                cells = []
                for shape in SHAPES:
                    refused, total = refused_share(strategy, shape, head, caps, seeds)
                    cells.append(f"{100 * refused / total:.1f} %")
                print(f"| {strategy} | {caps_name} | {head} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
