import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.genome import DEFAULT_FILTERS, Conv, Genome, MaxPool, parse_genome
from alife_nas.operators import (
    crossover,
    draw_cut,
    insert_conv,
    insert_pool,
    mutate_filter,
    random_genome,
    random_initial_genome,
    remove_conv,
    remove_pool,
    self_replicate,
)

layers = st.one_of(st.sampled_from(DEFAULT_FILTERS).map(Conv), st.just(MaxPool()))
genomes = st.lists(layers, min_size=1, max_size=20).map(lambda ls: Genome(tuple(ls)))
seeds = st.integers(0, 2**32 - 1)


def test_self_replication_doubles():
    assert str(self_replicate(parse_genome("32-M-64"))) == "32-M-64-32-M-64"


def test_crossover_children_match_the_seed_example():
    # S1 = a1_a2_a3_a4, S2 = b1_b2_b3_b4, p1 after a2, p2 after b2 (the seed's text)
    a, b = parse_genome("16-32-64-96"), parse_genome("128-192-224-256")
    kids = [str(k) for k in crossover(a, b, 2, 2)]
    assert kids == ["16-32-224-256", "16-32-128-192", "128-192-16-32", "128-192-64-96"]


def test_crossover_with_full_heads_gives_empty_tails():
    a, b = parse_genome("16-M"), parse_genome("32")
    assert [str(k) for k in crossover(a, b, 2, 1)] == ["16-M", "16-M-32", "32-16-M", "32"]
    with pytest.raises(ValueError):
        crossover(a, b, 0, 1)
    with pytest.raises(ValueError):
        crossover(a, b, 3, 1)


@given(genomes, genomes, seeds)
def test_crossover_lengths_and_layers(a, b, seed):
    rng = np.random.default_rng(seed)
    p, q = draw_cut(rng, a), draw_cut(rng, b)
    assert 1 <= p <= len(a) and 1 <= q <= len(b)
    k1, k2, k3, k4 = crossover(a, b, p, q)
    assert len(k1) == p + len(b) - q and len(k2) == p + q and len(k3) == q + p and len(k4) == q + len(a) - p
    assert k1.layers[:p] == a.layers[:p] and k4.layers[q:] == a.layers[p:]
    assert set(k1.layers + k2.layers + k3.layers + k4.layers) <= set(a.layers + b.layers)


@given(genomes, seeds)
def test_mutation_changes_exactly_one_conv_or_nothing_at_a_pool(g, seed):
    mutant, point = mutate_filter(np.random.default_rng(seed), g, DEFAULT_FILTERS)
    assert len(mutant) == len(g)
    diffs = [i for i in range(len(g)) if mutant[i] != g[i]]
    if isinstance(g[point], MaxPool):
        assert mutant == g
    else:
        assert diffs == [point]
        assert isinstance(mutant[point], Conv) and mutant[point].filters in DEFAULT_FILTERS
        assert mutant[point].filters != g[point].filters


def test_mutation_never_keeps_the_filter_count():
    g = parse_genome("64")
    rng = np.random.default_rng(0)
    seen = {mutate_filter(rng, g, (16, 64))[0][0].filters for _ in range(50)}
    assert seen == {16}


def test_initial_genomes_are_70_30():
    rng = np.random.default_rng(1)
    gs = [random_initial_genome(rng, DEFAULT_FILTERS) for _ in range(4000)]
    single = sum(len(g) == 1 for g in gs)
    assert all(str(g).count("-") == 0 or (len(g) == 2 and isinstance(g[1], MaxPool)) for g in gs)
    assert all(isinstance(g[0], Conv) and g[0].filters in DEFAULT_FILTERS for g in gs)
    assert 0.67 < single / len(gs) < 0.73
    assert {g[0].filters for g in gs} == set(DEFAULT_FILTERS)


@settings(max_examples=50)
@given(seeds, st.integers(1, 15))
def test_random_genomes_respect_caps_and_set(seed, max_layers):
    g = random_genome(np.random.default_rng(seed), DEFAULT_FILTERS, max_layers=max_layers)
    assert 1 <= len(g) <= max_layers and isinstance(g[0], Conv)
    assert not g.filters_outside(DEFAULT_FILTERS)


@given(genomes, seeds)
def test_structural_mutations(g, seed):
    rng = np.random.default_rng(seed)
    grown = insert_conv(rng, g, DEFAULT_FILTERS)
    assert len(grown) == len(g) + 1 and grown.num_convs == g.num_convs + 1
    pooled = insert_pool(rng, g)
    assert len(pooled) == len(g) + 1 and pooled.num_pools == g.num_pools + 1 and pooled[0] == g[0]
    fewer = remove_conv(rng, g)
    if g.num_convs == 0 or len(g) == 1:
        assert fewer is None
    else:
        assert fewer.num_convs == g.num_convs - 1 and fewer.num_pools == g.num_pools
    unpooled = remove_pool(rng, g)
    if g.num_pools == 0 or len(g) == 1:
        assert unpooled is None
    else:
        assert unpooled.num_pools == g.num_pools - 1
