"""The options added since 166d937 (--prune halving, --inherit-weights, --init-genomes, --max-flops)
change nothing when not given: a run makes exactly the trainings, step records and lattices it made
before them. The fingerprints were taken by running this same code on commit 166d937."""
from __future__ import annotations

import hashlib
import json

import pytest

from alife_nas.store import RunStore
from tests.conftest import run_search

CASES = {
    "neuralfinder": (dict(lattice=4, steps=20, seed=5), "4840fee58043c9c9"),
    "neuralfinder-k2": (dict(lattice=6, masters=2, steps=8, seed=6), "88e7c17072809537"),
    "regularized": (dict(strategy="regularized", budget=40, population=8, tournament=3, seed=7), "2e103363a5ab29c5"),
}


def fingerprint(run_dir) -> str:
    with RunStore.open(run_dir) as store:
        evals = [(e.genome, e.fitness, e.step, e.index, e.operator, list(e.parents), e.seed, e.failure_kind)
                 for e in store.evaluations()]
        rows = [(r.step, r.record, r.lattice, r.trainings, r.cache_hits) for r in store.step_rows()]
    return hashlib.sha256(json.dumps([evals, rows], sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("case", CASES)
def test_a_run_without_the_new_options_is_the_run_it_was(tmp_path, case):
    options, expected = CASES[case]
    assert fingerprint(run_search(tmp_path / "r", **options)) == expected
