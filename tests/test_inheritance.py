"""--inherit-weights: which layers a child copies, the copying itself, and the kept weights."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.genome import parse_genome
from alife_nas.inheritance import (
    Inherit,
    aligned_map,
    WeightPlan,
    WeightsFolder,
    crossover_maps,
    inheritable,
    mutant_map,
    request_key,
    self_replication_map,
)
from alife_nas.model import build_model, inherit_weights
from alife_nas.operators import crossover


def test_the_maps_follow_the_operators():
    a, b = parse_genome("16-M-32"), parse_genome("64-128")
    maps = crossover_maps(a, b, 2, 1)
    children = crossover(a, b, 2, 1)
    assert [str(c) for c in children] == ["16-M-128", "16-M-64", "64-16-M", "64-32"]
    assert [m for m, _ in maps] == [((0, 0), (0, 1), (1, 1)), ((0, 0), (0, 1), (1, 0)),
                                    ((1, 0), (0, 0), (0, 1)), ((1, 0), (0, 2))]
    assert [head for _, head in maps] == [1, 1, 0, 0]
    for (layers, _), child in zip(maps, children):  # every mapped layer is the same kind of layer
        parents = (a, b)
        assert [parents[p][j] for p, j in layers] == list(child)
    assert self_replication_map(a) == ((0, 0), (0, 1), (0, 2)) * 2
    assert mutant_map(a) == ((0, 0), (0, 1), (0, 2))


@pytest.mark.parametrize("parent, child, expected", [
    ("16-M-32-64", "16-M-48-64", ((0, 0), (0, 1), None, (0, 3))),   # a filter count changed
    ("16-M-32", "16-64-M-32", ((0, 0), None, (0, 1), (0, 2))),      # a conv inserted
    ("16-M-32-64", "16-M-64", ((0, 0), (0, 1), (0, 3))),            # a conv removed
    ("16-32", "16-M-32", ((0, 0), None, (0, 1))),                   # a pool inserted
])
def test_a_layer_edit_keeps_the_layers_before_and_after_it(parent, child, expected):
    assert aligned_map(parse_genome(parent), parse_genome(child)) == expected


@given(st.integers(0, 2**32 - 1))
def test_every_layer_a_mutated_child_maps_is_its_parents_same_layer(seed):
    import numpy as np

    from alife_nas.operators import mutate_structure, random_genome

    rng = np.random.default_rng(seed)
    parent = random_genome(rng, (16, 32, 64), max_layers=8)
    child, _ = mutate_structure(rng, parent, (16, 32, 64))
    layers = aligned_map(parent, child)
    assert len(layers) == len(child)
    assert all(parent[j] == child[i] for i, src in enumerate(layers) if src is not None for _, j in [src])


def test_what_can_be_inherited_is_what_keeps_its_input_channels():
    a, b = parse_genome("16-M-32"), parse_genome("64-128")
    child = parse_genome("16-M-128")  # aH+bT: b's 128-conv took 64 channels, here 16
    inherit = Inherit((("k", str(a)), ("l", str(b))), crossover_maps(a, b, 2, 1)[0][0], 1)
    assert inheritable(child, inherit, 3, [a, b]) == [True, False, False]
    mutant = parse_genome("16-M-64")  # a's 32 became 64: that conv is fresh
    assert inheritable(mutant, Inherit((("k", str(a)),), mutant_map(a), 0), 3, [a]) == [True, False, False]
    doubled = parse_genome("16-M-32-16-M-32")  # the second copy's first conv takes 32 channels, not 3
    assert inheritable(doubled, Inherit((("k", str(a)),), self_replication_map(a), 0), 3, [a]) == [
        True, False, True, False, False, True]


def test_the_cache_key_of_an_inherited_training_names_where_it_started():
    inherit = Inherit((("16", "16"),), ((0, 0),), 0)
    assert request_key("16", None) == "16"
    assert request_key("16", inherit).startswith("16<") and request_key("16", inherit) != request_key(
        "16", Inherit((("16<x", "16"),), ((0, 0),), 0))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_every_inherited_tensor_equals_its_parents_and_the_rest_is_fresh(batchnorm):
    shape = (3, 16, 16)
    a, b = parse_genome("16-M-32"), parse_genome("64-128")
    torch.manual_seed(1)
    parents = [build_model(g, shape, 10, 32, "kaiming", "flatten", batchnorm) for g in (a, b)]
    states = [{k: v + (0.5 if v.is_floating_point() else 1) for k, v in p.state_dict().items()} for p in parents]  # "trained": unlike any fresh init
    child = parse_genome("16-M-128")
    torch.manual_seed(2)
    fresh = build_model(child, shape, 10, 32, "kaiming", "flatten", batchnorm)
    torch.manual_seed(2)
    model = build_model(child, shape, 10, 32, "kaiming", "flatten", batchnorm)
    layers, head = crossover_maps(a, b, 2, 1)[0]
    copied = inherit_weights(model, child, [(states[0], a, [(i, j) for i, (p, j) in enumerate(layers) if p == 0], False),
                                            (states[1], b, [(i, j) for i, (p, j) in enumerate(layers) if p == 1], True)])
    got, before = model.state_dict(), fresh.state_dict()
    first = [k for k in got if k.startswith("features.0.") or (batchnorm and k.startswith("features.1."))]
    assert first and all(torch.equal(got[k], states[0][k]) for k in first)  # a's first conv (and its norm)
    # the 128-conv: b's took 64 channels, this one 16: fresh, as are b's hidden layer (input size
    # changed: 128x4x4 vs 128x8x8 maps) and the classifier comes from b (same shape)
    rest = [k for k in got if k not in first and not k.startswith("classifier")]
    assert rest and all(torch.equal(got[k], before[k]) for k in rest)
    assert all(torch.equal(got[k], states[1][k]) for k in ("classifier.weight", "classifier.bias"))
    assert copied == 2


@pytest.mark.usefixtures("one_torch_thread")
def test_a_training_starts_from_its_parents_weights_and_saves_its_own(digits, tmp_path):
    from alife_nas.settings import make_settings
    from alife_nas.training import Trainer

    trainer = Trainer(digits, make_settings("fast", max_epochs=2))
    folder = WeightsFolder(tmp_path, "digest")
    parent = trainer.train("16-M-32", 1, weights=WeightPlan(save_to=str(folder.path("16-M-32"))))
    assert parent.failure is None and parent.inherited == 0 and folder.path("16-M-32").exists()
    saved = torch.load(folder.path("16-M-32"), weights_only=True)
    plan = WeightPlan(sources=((str(folder.path("16-M-32")), "16-M-32", ((0, 0), (1, 1), (2, 2)), True),),
                      save_to=str(folder.path("16-M-64")))
    child = trainer.train("16-M-64", 2, weights=plan)  # a mutant: its 64-conv is fresh
    # copied: the 16-conv and the classifier; the hidden layer's input grew (64x4x4, not 32x4x4): fresh
    assert child.failure is None and child.inherited == 2 and folder.size()[0] == 2
    assert saved["features.0.weight"].shape == (16, 1, 3, 3)
    assert folder.keep(["16-M-32"]) == 1 and folder.size()[0] == 1 and folder.path("16-M-32").exists()


def _inheriting_run(run_dir, digits, **options):
    from tests.conftest import make_search

    own = ({"population": 4, "tournament": 2, "budget": 16} if options.get("strategy") == "regularized"
           else {"lattice": 3, "steps": 4})
    options = {**own, "filters": [8, 16], "max_epochs": 2, "inherit_weights": True, "seed": 3, "device": "cpu",
               **options}
    return make_search(run_dir, None, digits, **options)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_run_keeps_exactly_the_weights_its_cells_hold(digits, tmp_path):
    from alife_nas.search import read_status

    with _inheriting_run(tmp_path / "r", digits) as search:
        search.run()
        snapshot, store = search.strategy.lattice(), search.store
        folder = search.weights
        held = set(search.strategy.held_weights())
        assert held == {key or genome for grow, krow in zip(snapshot["genomes"], snapshot["weights"])
                        for genome, key in zip(grow, krow)}
        assert {p.name for p in folder.folder.iterdir()} == {folder.path(k).name for k in held}
        assert any("<" in key for key in held)  # some cell holds an inherited training
        inherited = [ev for ev in store.evaluations() if ev.operator not in ("init",)]
        keys = [row[0] for row in store._conn.execute("SELECT cache_key FROM evaluations WHERE step > 0")]
        assert inherited and all("<" in key for key in keys)  # every child is cached with where it started
        files, size = folder.size()
        assert read_status(store)["weights"] == {"files": files, "bytes": size} and files == len(held)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_regularized_population_inherits_and_keeps_its_members_weights(digits, tmp_path):
    from tests.conftest import make_search

    options = dict(strategy="regularized", population=4, tournament=2, budget=10, filters=[8, 16], max_epochs=2,
                   inherit_weights=True, inherited_epochs=0.5, seed=2, device="cpu")
    with make_search(tmp_path / "r", None, digits, **options) as search:
        search.run()
        held, folder, store = search.strategy.held_weights(), search.weights, search.store
        assert len(held) == 4 and {p.name for p in folder.folder.iterdir()} == {folder.path(k).name for k in held}
        children = [ev for ev in store.evaluations() if ev.step > 0]
        assert children and all(ev.epochs == 1 for ev in children if ev.failure is None)  # half of 2 epochs
        keys = [row[0] for row in store._conn.execute("SELECT cache_key FROM evaluations WHERE step > 0")]
        assert all("<" in key for key in keys)
        state = search.strategy.state()
    assert state["weights"] == held  # stored with every step: a resumed population knows its members' weights


def test_inheriting_and_reevaluating_is_refused_and_a_shorter_budget_needs_inheritance():
    from alife_nas.config import ConfigError, SearchConfig

    with pytest.raises(ConfigError, match="inherit_weights and reevaluate 2"):
        SearchConfig.from_options(inherit_weights=True, reevaluate=2)
    with pytest.raises(ConfigError, match="inherited_epochs 0.5 needs inherit_weights"):
        SearchConfig.from_options(inherited_epochs=0.5)
    with pytest.raises(ConfigError, match="inherited_epochs 0.5 needs inherit_weights"):
        SearchConfig.from_options(strategy="regularized", inherited_epochs=0.5)
    with pytest.raises(ConfigError, match="inherit_weights and retrain_rediscovered"):
        SearchConfig.from_options(strategy="regularized", inherit_weights=True, retrain_rediscovered=True)


@pytest.mark.usefixtures("one_torch_thread")
def test_an_inherited_child_trains_the_shorter_budget(digits, tmp_path):
    with _inheriting_run(tmp_path / "r", digits, inherited_epochs=0.5, steps=2) as search:
        search.run()
        evaluations = search.store.evaluations()
    assert {ev.epochs for ev in evaluations if ev.operator == "init"} == {2}
    assert {ev.epochs for ev in evaluations if ev.operator != "init" and ev.failure is None} == {1}


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("how", [{"prune": "halving"}, {"strategy": "regularized", "prune": "median"}],
                         ids=["neuralfinder-halving", "regularized-median"])
def test_killed_and_resumed_with_pruning_and_inheritance_equals_uninterrupted(digits, tmp_path, monkeypatch, how):
    import dataclasses
    import itertools

    from alife_nas.search import Search
    from alife_nas.store import RunStore
    from alife_nas.training import Trainer

    class Crash(BaseException):
        pass

    train = Trainer.train
    made = itertools.count(1)

    def counted(self, *args, **kwargs):
        next(made)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", counted)
    with _inheriting_run(tmp_path / "a", digits, **how) as search:
        search.run()
    total = next(made) - 1
    crashes = 0
    assert total > 12
    for after in (4, 6, 3, 5):  # each attempt dies this many trainings after it (re)started: in steps, between
        calls = itertools.count(1)

        def dying(self, *args, **kwargs):
            if next(calls) == after:
                raise Crash
            return train(self, *args, **kwargs)

        monkeypatch.setattr(Trainer, "train", dying)
        run_dir = tmp_path / "b"
        search = Search.open(run_dir, data=digits) if (run_dir / "run.sqlite").exists() else _inheriting_run(
            run_dir, digits, **how)
        with search:
            try:
                search.run()
            except Crash:
                crashes += 1
    monkeypatch.setattr(Trainer, "train", train)
    with Search.open(tmp_path / "b", data=digits) as search:
        search.run()
    assert crashes >= 3

    def history(run_dir):
        with RunStore.open(run_dir) as store:
            evals = [dataclasses.replace(e, created_at="", train_time=None, images_per_sec=None)
                     for e in store.evaluations()]
            rows = [(r.step, r.record, r.lattice, r.trainings, r.cache_hits) for r in store.step_rows()]
            keys = [key for (key,) in store._conn.execute("SELECT cache_key FROM evaluations ORDER BY id")]
            return evals, rows, keys, store.last_step().strategy_state

    whole = history(tmp_path / "a")
    assert any(e.failure_kind == "pruned" for e in whole[0]) or how.get("prune") != "halving"
    assert any("<" in key for key in whole[2])  # children started from inherited weights
    assert whole == history(tmp_path / "b")
    names = [sorted(p.name for p in (tmp_path / r / "weights").iterdir()) for r in "ab"]
    assert names[0] == names[1]
    for name in names[0]:
        a, b = (torch.load(tmp_path / r / "weights" / name, weights_only=True) for r in "ab")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
