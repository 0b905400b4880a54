import hashlib

import pytest


def fake_score(genome, seed):
    """Cheap deterministic 'training': depends on the genome (and a little on the seed)."""
    h = int(hashlib.sha256(str(genome).encode()).hexdigest()[:6], 16) / 16**6
    fitness = min(0.99, 0.3 + 0.04 * min(len(genome), 12) + 0.1 * h + (seed % 97) / 1e5)
    return {"genome": str(genome), "fitness": fitness, "params": 1000 * len(genome), "flops": 9000 * len(genome),
            "epochs": 3, "best_epoch": 2, "train_time": 0.001}


@pytest.fixture(autouse=True)
def _private_data_cache(tmp_path_factory, monkeypatch):
    """Decoded image folders are cached under $ALIFE_NAS_CACHE; tests never touch the user's cache."""
    monkeypatch.setenv("ALIFE_NAS_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny trainings on a shared 2-core box: one intra-op thread avoids OpenMP barrier stalls when
    other processes hold a core. Yields the count before; the package itself never changes it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield before
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    """The bundled digits data set, loaded once per test module."""
    from alife_nas.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def score():
    return fake_score


def tree_state(path):
    """Every file under path with its bytes: to prove a refused command changed nothing."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def make_search(run_dir, score=fake_score, data=None, **options):
    """A search with a cheap deterministic fitness (no data set unless given), not yet run."""
    from alife_nas.config import SearchConfig
    from alife_nas.search import Search

    return Search.create(run_dir, SearchConfig.from_options(**options), score=score, data=data)


def run_search(run_dir, score=fake_score, data=None, **options):
    """Make a search with :func:`make_search`, run it to its end, close it; returns run_dir."""
    with make_search(run_dir, score, data, **options) as search:
        search.run()
    return run_dir


def dying_score(genome, seed):
    """fake_score, except that a worker training a genome of three or more layers kills itself.

    With ALIFE_TEST_DIE_ONCE set to a folder, each such genome kills its worker only the first
    time (a marker file per genome remembers it), so the retry succeeds.
    """
    import os
    import signal
    from pathlib import Path

    if len(genome) >= 3:
        once = os.environ.get("ALIFE_TEST_DIE_ONCE")
        marker = Path(once) / str(genome) if once else None
        if marker is None or not marker.exists():
            if marker is not None:
                marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return fake_score(genome, seed)


def poisoning_score(genome, seed):
    """fake_score, except that genomes of three or more layers fail like a CUDA error that leaves
    the process's GPU context unusable (every later CUDA call there would fail too)."""
    if len(genome) >= 3:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return fake_score(genome, seed)


def run_strategy(make, evaluate, seed, steps, break_at=None):
    """A strategy run in memory: initialise, then ``steps - 1`` steps. With ``break_at`` its state
    (through JSON, as the store keeps it) and the RNG's are taken at that step and a fresh
    strategy from ``make()`` goes on from them, as a resume does. Returns (records, strategy)."""
    import json

    import numpy as np

    strategy, rng = make(), np.random.default_rng(seed)
    records = [strategy.initialize(rng, evaluate)]
    for step in range(1, steps):
        if step == break_at:
            state, rng_state = json.loads(json.dumps(strategy.state())), rng.bit_generator.state
            strategy = make()
            strategy.load_state(state, None)
            rng = np.random.default_rng(0)
            rng.bit_generator.state = rng_state
        records.append(strategy.step(rng, evaluate, step))
    return records, strategy


@pytest.fixture
def fake_trainer(monkeypatch):
    """evolve/resume through the real command line, with the cheap fitness instead of training."""
    from alife_nas.data import load_data
    from alife_nas.search import Search

    create, open_ = Search.create.__func__, Search.open.__func__
    monkeypatch.setattr(Search, "create", classmethod(lambda cls, run_dir, config=None, download=False, force=False: create(
        cls, run_dir, config, score=fake_score, data=load_data(config.data), force=force)))
    monkeypatch.setattr(Search, "open", classmethod(
        lambda cls, run_dir, download=False, **options: open_(cls, run_dir, score=fake_score, **options)))
