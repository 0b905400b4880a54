from alife_nas.config import SearchConfig, settings_hash
from alife_nas.evaluation import CachedEvaluator, cache_key, candidate_seed
from alife_nas.evolution import EvalRequest
from alife_nas.executors import SerialExecutor
from alife_nas.genome import parse_genome
from alife_nas.store import RunStore


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
