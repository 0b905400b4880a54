"""--prune halving: a NeuralFinder step's candidates train to the rung, only the best goes on."""
from __future__ import annotations


import pytest

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.contract import PRUNED, EvalRequest
from alife_nas.evaluation import Halving, halving_rung
from alife_nas.genome import parse_genome
from alife_nas.store import RunStore
from tests.conftest import make_search
from tests.test_pruning import EPOCHS, crashed_and_resumed, curve, curve_score

RUNG = halving_rung(EPOCHS)  # 2 of 8 epochs
OPTIONS = dict(lattice=3, steps=25, seed=4, max_epochs=EPOCHS)


def run(run_dir, prune, score=curve_score, **options):
    with make_search(run_dir, score, prune=prune, **{**OPTIONS, **options}) as search:
        search.run()
    return run_dir


def stored(run_dir):
    with RunStore.open(run_dir) as store:
        return store.evaluations(), store.step_rows(), store.totals()


def test_the_rung_is_a_quarter_of_the_epochs_and_none_for_trainings_too_short_to_split():
    assert [halving_rung(e) for e in (1, 2, 4, 8, 12, 100)] == [0, 1, 1, 2, 3, 25]


def test_with_monotone_curves_halving_keeps_the_true_best_and_decides_every_step_as_full_training(tmp_path):
    # every curve has one shape (q * (1 - 0.6^e)), so the order at the rung is the order at the end
    full_evals, full_rows, full_totals = stored(run(tmp_path / "full", "none"))
    evals, rows, totals = stored(run(tmp_path / "halving", "halving"))
    for ours, theirs in zip(rows, full_rows):
        assert ours.lattice == theirs.lattice
        assert (ours.record["outcome"], ours.record["max_c"]) == (theirs.record["outcome"], theirs.record["max_c"])
        assert ours.record.get("best_index") == theirs.record.get("best_index")
    assert len(rows) == len(full_rows) == 26
    pruned = [ev for ev in evals if ev.failure_kind == PRUNED]
    assert pruned and all(ev.epochs == RUNG == len(ev.history) and ev.fitness == 0.0 for ev in pruned)
    assert all(ev.operator not in ("init", "mutant") for ev in pruned)
    assert all("halving rung" in ev.failure for ev in pruned)
    # every cell holds a full training's fitness, never a rung's
    full_fitness = {ev.genome: ev.fitness for ev in evals if ev.failure is None}
    for row in rows:
        for genomes, values in zip(row.lattice["genomes"], row.lattice["fitness"]):
            assert all(full_fitness[g] == v == max(curve(g)) for g, v in zip(genomes, values))
    assert totals["epochs"] < full_totals["epochs"]
    assert totals["epochs"] == sum(ev.epochs for ev in evals)


def test_a_step_trains_each_new_candidate_to_the_rung_and_only_its_best_in_full(tmp_path):
    search = make_search(tmp_path / "r", curve_score, prune="halving", **OPTIONS)
    search.run()
    store, evaluator = search.store, search.evaluator
    step = store.steps_done + 1
    genomes = ["16-16-16-16-16-16-16", "32-M-32-M-32", "64-64-M", "16-32-M-64-M-128", "128-M-16-16"]
    requests = [EvalRequest(parse_genome(g), i, "self" if i == 0 else f"cross-{i}", position=(1, 1))
                for i, g in enumerate(genomes)]
    before = len(store.evaluations())
    scores = Halving(evaluator, RUNG)(step, requests)
    best = max(range(5), key=lambda i: max(curve(genomes[i])))
    assert scores == [max(curve(g)) if i == best else 0.0 for i, g in enumerate(genomes)]
    made = store.evaluations()[before:]
    assert [(ev.genome, ev.epochs, ev.failure_kind) for ev in made] == (
        [(g, RUNG, PRUNED) for g in genomes] + [(genomes[best], EPOCHS, None)])
    assert made[-1].seed == made[best].seed and made[-1].history[:RUNG] == made[best].history
    # a genome stopped at the rung, asked for again in full (a mutant), is trained in full
    loser = genomes[(best + 1) % 5]
    assert evaluator(step + 1, [EvalRequest(parse_genome(loser), 5, "mutant")]) == [max(curve(loser))]
    assert store.lookup(f"{store.settings_hash}:{loser}").epochs == EPOCHS
    search.close()


def test_a_candidate_trained_in_full_before_takes_part_for_free(tmp_path):
    search = make_search(tmp_path / "r", curve_score, prune="halving", **OPTIONS)
    search.run()
    store, evaluator = search.store, search.evaluator
    step = store.steps_done + 1
    known = store.best_evaluation().genome  # trained in full, the best there is
    new = "16-16-16-16-16-16-16-16"
    requests = [EvalRequest(parse_genome(g), i, "self" if i == 0 else "cross-aH+bT", position=(0, 0))
                for i, g in enumerate([known, new])]
    before = (len(store.evaluations()), evaluator.trainings, evaluator.cache_hits)
    scores = Halving(evaluator, RUNG)(step, requests)
    assert scores[0] == store.best_evaluation().fitness
    assert scores[1] == (max(curve(new)) if max(curve(new)[:RUNG]) > max(curve(known)[:RUNG]) else 0.0)
    assert evaluator.cache_hits == before[2] + 1
    search.close()


def test_halving_is_for_neuralfinder_and_one_training_per_genome():
    assert SearchConfig.from_options(prune="halving").fitness.prune == "halving"
    with pytest.raises(ConfigError, match="halving"):
        SearchConfig.from_options(prune="halving", strategy="regularized")
    with pytest.raises(ConfigError, match="cannot be combined"):
        SearchConfig.from_options(prune="halving", reevaluate=2)


def test_halving_with_several_masters_ranks_each_move_apart(tmp_path):
    evals, rows, _ = stored(run(tmp_path / "k", "halving", lattice=6, masters=2, steps=8))
    for row in rows[1:]:
        for move in row.record["moves"]:
            stopped = {ev.genome for ev in evals if ev.step == row.step and ev.failure_kind == PRUNED
                       and tuple(ev.position) == tuple(move["master"])}
            winner = move["candidates"][move["best_index"]]
            assert winner["genome"] not in stopped or winner["fitness"] == max(curve(winner["genome"]))
            assert winner["fitness"] == max(max(curve(c["genome"])) for c in move["candidates"])


def test_killed_and_resumed_with_halving_equals_uninterrupted(tmp_path):
    config = SearchConfig.from_options(prune="halving", **OPTIONS)
    whole, resumed, crashes = crashed_and_resumed(tmp_path, config, (3, 12, 14, 5, 30, 9, 22))
    assert crashes >= 4
    assert any(ev.failure_kind == PRUNED for ev in whole[0])
    assert whole == resumed


def test_compare_by_epochs_and_flops_counts_what_a_halved_run_spent(tmp_path, digits):
    from alife_nas.compare import spent
    from alife_nas.workflows import compare_runs

    def with_flops(genome, seed, on_epoch=None):
        return {**curve_score(genome, seed, on_epoch), "flops": 1000 * len(genome)}

    runs = []
    for prune in ("none", "halving"):
        with make_search(tmp_path / prune, with_flops, digits, prune=prune, **OPTIONS) as search:
            search.run()
        runs.append(tmp_path / prune)
    by_epochs = compare_runs(runs, cost="epochs")
    full, halved = by_epochs.curves
    assert (full.strategy, halved.strategy) == ("neuralfinder", "neuralfinder-halving")
    assert by_epochs.budget == spent(halved, "epochs")[-1] < spent(full, "epochs")[-1]
    with RunStore.open(runs[1]) as store:
        images = store.dataset_info["sizes"]["train"]
        assert spent(halved, "flops")[-1] == sum(3 * ev.flops * ev.epochs * images for ev in store.evaluations())
    by_flops = compare_runs(runs, cost="flops", out=tmp_path / "cmp")
    assert "neuralfinder-halving" in by_flops.table and (tmp_path / "cmp" / "comparison.png").exists()


def test_a_halved_run_exports_and_its_genomes_fitness_leaves_the_stopped_trainings_out(tmp_path):
    from alife_nas.workflows import export_run

    evals, _, _ = stored(run(tmp_path / "r", "halving"))
    with RunStore.open(tmp_path / "r") as store:
        stats = store.genome_fitness()
    full = {ev.genome: ev.fitness for ev in evals if ev.failure is None}
    assert set(stats) == set(full) and all(stats[g].mean == full[g] for g in full)
    rows = export_run(tmp_path / "r", top=5, fmt="json").rows
    assert [r["genome"] for r in rows] and all("#" not in r["genome"] for r in rows)
