import pytest

from alife_nas.config import SearchConfig, settings_hash
from alife_nas.contract import EvalRequest
from alife_nas.evaluation import CachedEvaluator, cache_key, candidate_seed, sample_seed
from alife_nas.executors import SerialExecutor
from alife_nas.genome import parse_genome
from alife_nas.store import Evaluation, RunStore


def serial(score):
    return SerialExecutor(lambda genome, seed, on_epoch=None: score(genome, seed))


def make_store(tmp_path, settings=None):
    return RunStore.create(tmp_path / "run", SearchConfig(), settings_hash(settings or {"lr": 0.1}))


def test_candidate_seed_is_pure_and_distinct():
    assert candidate_seed(1, 2, 3) == candidate_seed(1, 2, 3)
    seeds = {candidate_seed(s, t, i) for s in range(3) for t in range(20) for i in range(7)}
    assert len(seeds) == 3 * 20 * 7


def test_settings_hash_is_order_independent():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


def test_cache_never_trains_a_genome_twice(tmp_path, score):
    store = make_store(tmp_path)
    trained = []

    def counting(genome, seed):
        trained.append(str(genome))
        return score(genome, seed)

    ev = CachedEvaluator(store, serial(counting), run_seed=0)
    g, h = parse_genome("16-M"), parse_genome("32")
    first = ev(1, [EvalRequest(g, 0, "self"), EvalRequest(h, 1, "x"), EvalRequest(g, 2, "x")])
    assert trained == ["16-M", "32"] and ev.trainings == 2 and ev.cache_hits == 1
    assert first[0] == first[2]
    ev.reset_counts()
    again = ev(2, [EvalRequest(h, 0, "self"), EvalRequest(g, 1, "x")])
    assert trained == ["16-M", "32"] and ev.cache_hits == 2 and again == [first[1], first[0]]
    rows = store.evaluations()
    assert len(rows) == 2 and rows[0].seed == candidate_seed(0, 1, 0) and rows[1].seed == candidate_seed(0, 1, 1)


def test_replay_of_same_step_counts_as_training_not_hit(tmp_path, score):
    store = make_store(tmp_path)
    ev = CachedEvaluator(store, serial(score), run_seed=0)
    ev(3, [EvalRequest(parse_genome("16"), 4, "x")])
    ev.reset_counts()
    ev(3, [EvalRequest(parse_genome("16"), 4, "x")])  # the same step re-run after a restart
    assert (ev.trainings, ev.cache_hits) == (1, 0)
    assert store.count_evaluations() == 1


def test_other_settings_are_a_different_cache(tmp_path, score):
    store = make_store(tmp_path)
    ev = CachedEvaluator(store, serial(score), run_seed=0)
    ev(1, [EvalRequest(parse_genome("16"), 0, "x")])
    key = cache_key(settings_hash({"lr": 0.2}), parse_genome("16"))
    assert store.lookup(key) is None
    assert store.lookup(cache_key(store.settings_hash, "16")) is not None


def test_a_crashing_score_gives_zero_and_the_next_one_works(tmp_path, score):
    store = make_store(tmp_path)

    def flaky(genome, seed):
        if len(genome) == 2:
            raise RuntimeError("boom")
        if len(genome) == 3:
            return {"fitness": float("nan")}
        return score(genome, seed)

    ev = CachedEvaluator(store, serial(flaky), run_seed=0)
    out = ev(1, [EvalRequest(parse_genome("16-M"), 0, "x"), EvalRequest(parse_genome("16-M-M"), 1, "x"),
                 EvalRequest(parse_genome("32"), 2, "x")])
    assert out[0] == 0.0 and out[1] == 0.0 and out[2] > 0
    rows = store.evaluations()
    assert rows[0].failure_kind == "error" and "RuntimeError: boom" in rows[0].failure
    assert rows[1].fitness == 0.0
    assert store.totals()["failures"] == 1


# --- further samples of a genome (EvalRequest.sample >= 1) ---------------------------------------
def test_sample_zero_is_the_candidate_seed_and_further_samples_get_fresh_ones():
    assert all(sample_seed(3, t, i, 0) == candidate_seed(3, t, i) for t in range(5) for i in range(5))
    firsts = {candidate_seed(3, t, i) for t in range(10) for i in range(7)}
    further = [sample_seed(3, t, i, k) for t in range(10) for i in range(7) for k in range(1, 4)]
    assert len(set(further)) == len(further) and not firsts & set(further)
    with pytest.raises(ValueError, match="sample"):
        sample_seed(3, 1, 1, -1)


def test_a_further_sample_trains_with_its_own_seed_and_is_stored_as_that_sample(tmp_path, score):
    store = make_store(tmp_path)
    seeds = []

    def recording(genome, seed):
        seeds.append((str(genome), seed))
        return score(genome, seed)

    ev = CachedEvaluator(store, serial(recording), run_seed=4)
    g = parse_genome("16-M")
    out = ev(2, [EvalRequest(g, 0, "init"), EvalRequest(g, 1, "init", sample=1), EvalRequest(g, 2, "x", sample=1)])
    # sample 0 and sample 1 are two trainings; the repeat of sample 1 in the batch is answered by the first
    assert seeds == [("16-M", candidate_seed(4, 2, 0)), ("16-M", sample_seed(4, 2, 1, 1))]
    assert (ev.trainings, ev.cache_hits) == (2, 1) and out[1] == out[2] != out[0]
    key = cache_key(store.settings_hash, g)
    assert store.count_evaluations() == 2 and len(store.evaluations()) == 1 and store.count_samples() == 1
    stored = store.samples_of(key)
    assert sorted(stored) == [0, 1] and stored[1].fitness == out[1] and stored[1].seed == sample_seed(4, 2, 1, 1)
    assert (stored[1].step, stored[1].index, stored[1].genome, stored[1].epochs) == (2, 1, "16-M", 3)
    assert store.lookup_sample(key, 0) == store.lookup(key) and store.lookup_sample(key, 2) is None
    assert [(k, n, e.fitness) for k, n, e in store.samples()] == [(key, 1, out[1])]

    ev.reset_counts()
    again = ev(5, [EvalRequest(g, 3, "x", sample=1)])  # another step asking for a stored sample: a hit
    assert again == [out[1]] and (ev.trainings, ev.cache_hits) == (0, 1) and len(seeds) == 2
    ev.reset_counts()
    ev(2, [EvalRequest(g, 1, "init", sample=1)])  # the same step re-run after a restart: a training replayed
    assert (ev.trainings, ev.cache_hits) == (1, 0) and len(seeds) == 2


def test_totals_count_samples_as_trainings(tmp_path, score):
    store = make_store(tmp_path)

    def flaky(genome, seed):
        if seed == sample_seed(0, 1, 1, 2):
            raise RuntimeError("boom")
        return score(genome, seed)

    ev = CachedEvaluator(store, serial(flaky), run_seed=0)
    g = parse_genome("32")
    out = ev(1, [EvalRequest(g, 0, "x"), EvalRequest(g, 1, "x", sample=2), EvalRequest(g, 2, "x", sample=1)])
    assert out[1] == 0.0 and out[0] > 0 and out[2] > 0
    totals = store.totals()
    assert totals["trainings"] == 3 == store.count_evaluations() and totals["samples"] == 2
    assert totals["failures"] == 1 and totals["epochs"] == 6 and totals["devices"] == ["cpu"]
    failed = store.lookup_sample(cache_key(store.settings_hash, g), 2)
    assert failed.failure_kind == "error" and "boom" in failed.failure


def test_sample_numbers_are_checked(tmp_path, score):
    store = make_store(tmp_path)
    with pytest.raises(ValueError, match="sample"):
        CachedEvaluator(store, serial(score), run_seed=0)(1, [EvalRequest(parse_genome("16"), 0, "x", sample=-1)])
    with pytest.raises(ValueError, match="sample"):
        store.add_sample(cache_key(store.settings_hash, "16"), 0, Evaluation(0, "16", 0.5, step=1, index=0))


def test_a_run_without_the_samples_table_reads_as_one_without_samples(tmp_path, score):
    import sqlite3

    store = make_store(tmp_path)
    CachedEvaluator(store, serial(score), run_seed=0)(1, [EvalRequest(parse_genome("16"), 0, "x")])
    store.close()
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as conn:  # as schema 2 wrote it
        conn.execute("DROP TABLE samples")
        conn.execute("ALTER TABLE evaluations DROP COLUMN history")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with RunStore.open(tmp_path / "run") as old:
        key = cache_key(old.settings_hash, "16")
        assert old.count_evaluations() == 1 and old.count_samples() == 0 and old.samples() == []
        assert old.totals()["trainings"] == 1 and sorted(old.samples_of(key)) == [0]
        assert old.lookup_sample(key, 1) is None
