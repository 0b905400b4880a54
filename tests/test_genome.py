import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.genome import (
    DEFAULT_FILTERS,
    Conv,
    Genome,
    GenomeParseError,
    MaxPool,
    format_tuple_form,
    parse_genome,
    parse_tuple_form,
)

layers = st.one_of(st.sampled_from(DEFAULT_FILTERS).map(Conv), st.just(MaxPool()))
genomes = st.lists(layers, min_size=1, max_size=30).map(lambda ls: Genome(tuple(ls)))

SEED_BEST = (
    "('init-1', '0.927000', [('conv', [('nb_filter', 32)]), ('conv',[('nb_filter', 192)]), ('conv', "
    "[('nb_filter', 192)]), ('maxp', [('pool_size', 2)]),('conv', [('nb_filter', 128)]), ('conv', "
    "[('nb_filter', 192)]), ('maxp',[('pool_size', 2)]), ('conv', [('nb_filter', 128)]), ('conv', "
    "[('nb_filter',192)]), ('conv', [('nb_filter', 192)]), ('maxp', [('pool_size', 2)]), ('conv',"
    "[('nb_filter', 128)]), ('conv', [('nb_filter', 192)]), ('maxp', [('pool_size',2)])])"
)


def test_compact_form_parses_and_formats():
    g = parse_genome("32-192-192-M-128-192-M")
    assert g.layers[:2] == (Conv(32), Conv(192))
    assert g[3] == MaxPool()
    assert str(g) == "32-192-192-M-128-192-M"
    assert len(g) == 7 and g.num_convs == 5 and g.num_pools == 2


def test_seed_published_best_model_reads():
    name, score, g = parse_tuple_form(SEED_BEST)
    assert name == "init-1" and score == pytest.approx(0.927)
    assert str(g) == "32-192-192-M-128-192-M-128-192-192-M-128-192-M"
    assert parse_genome(SEED_BEST) == g


def test_genomes_are_hashable_and_canonical():
    assert parse_genome("32-m") == parse_genome(" 32-M ")
    assert len({parse_genome("32-M"), parse_genome("32-M"), parse_genome("M-32")}) == 2
    with pytest.raises(Exception):
        parse_genome("32").layers = ()  # frozen


@given(genomes)
def test_compact_round_trip(g):
    assert parse_genome(str(g)) == g


@given(genomes, st.text(alphabet="abc-_0123456789", min_size=1, max_size=10),
       st.floats(min_value=0, max_value=1, allow_nan=False))
def test_tuple_round_trip_keeps_name_and_score(g, name, score):
    text = format_tuple_form(g, name, score)
    got_name, got_score, got = parse_tuple_form(text)
    assert got == g and got_name == name
    assert got_score == pytest.approx(round(score, 6))
    assert parse_genome(text) == g


def test_tuple_form_without_score_and_bare_list():
    text = format_tuple_form(parse_genome("16-M"), "x")
    assert parse_tuple_form(text)[1] is None
    assert parse_genome("[('conv', [('nb_filter', 16)]), ('maxp', [('pool_size', 2)])]") == parse_genome("16-M")


@pytest.mark.parametrize("text, words", [
    ("", ["empty"]),
    ("   ", ["empty"]),
    ("32--M", ["empty layer", "character 4", "layer 2"]),
    ("32-M-", ["empty layer", "layer 3"]),
    ("32-x3-M", ["'x3'", "character 4", "layer 2"]),
    ("32-0", ["0 filters", "layer 2"]),
    ("32-1.5", ["'1.5'", "layer 2"]),
])
def test_malformed_compact_names_problem_and_position(text, words):
    with pytest.raises(GenomeParseError) as info:
        parse_genome(text)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("text, word", [
    ("('a', '0.5', [('conv', [('nb_filter', 32)])", "character"),
    ("('a', '0.5', [('dense', [('units', 3)])])", "layer 1"),
    ("('a', '0.5', [('conv', [('nb_filter', 32)]), ('conv', [('nb_filter', -1)])])", "layer 2"),
    ("('a', '0.5', [('maxp', [('pool_size', 3)])])", "pool_size"),
    ("('a', 'high', [('maxp', [('pool_size', 2)])])", "score"),
    ("('a', '0.5', [])", "empty"),
    ("{'a': 1}", "tuple form"),
])
def test_malformed_tuple_form(text, word):
    with pytest.raises(GenomeParseError) as info:
        parse_tuple_form(text)
    assert word in str(info.value)


def test_filters_outside_set():
    assert parse_genome("16-17-M-999").filters_outside(DEFAULT_FILTERS) == [17, 999]


def test_genome_rejects_bad_layers():
    with pytest.raises(ValueError):
        Genome(())
    with pytest.raises(ValueError):
        Genome((Conv(0),))
    with pytest.raises(TypeError):
        Genome(("conv",))
