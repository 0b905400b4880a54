import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.genome import (
    DEFAULT_FILTERS,
    MAX_FILTERS,
    MAX_GENOME_LAYERS,
    MAX_GENOME_TEXT,
    Conv,
    Genome,
    GenomeParseError,
    MaxPool,
    format_tuple_form,
    ONE_LINE_LIMIT,
    normalize_filters,
    one_line,
    parse_genome,
    parse_tuple_form,
    shorten,
    shown,
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


# --- edges: whitespace, limits, short messages ----------------------------------------------------
UNICODE_SPACES = ["\u00a0", "\u2003", "\u3000", "\t", "\n", " ", "\u202f"]


@given(genomes, st.lists(st.sampled_from(UNICODE_SPACES), min_size=1, max_size=6), st.data())
def test_unicode_whitespace_around_layers_is_ignored_in_both_forms(g, spaces, data):
    tokens = str(g).split("-")
    pads = [data.draw(st.sampled_from(["", *spaces])) for _ in range(2 * len(tokens))]
    text = "-".join(pads[2 * i] + t + pads[2 * i + 1] for i, t in enumerate(tokens))
    assert parse_genome(text) == g
    tuple_text = format_tuple_form(g).replace(" ", data.draw(st.sampled_from(spaces)))
    assert parse_tuple_form(tuple_text)[2] == g


def test_whitespace_inside_a_count_and_look_alikes_are_refused_and_shown():
    for text, shown_as in [("3\u00a02-M", r"'3\xa02'"), ("32\u200b-M", r"'32\u200b'"), ("\uff13\uff12-M", "'３２'")]:
        with pytest.raises(GenomeParseError) as info:
            parse_genome(text)
        assert shown_as in str(info.value) and "layer 1" in str(info.value)


def test_the_largest_genome_read_parses_and_one_more_layer_is_refused():
    layers = ["16", "32"] * (MAX_GENOME_LAYERS // 2 - 1) + ["M", "64"]
    assert len(parse_genome("-".join(layers))) == MAX_GENOME_LAYERS
    bare = "[" + ", ".join(["('conv', [('nb_filter', 65536)])"] * MAX_GENOME_LAYERS) + "]"
    assert len(bare) < MAX_GENOME_TEXT and len(parse_genome(bare)) == MAX_GENOME_LAYERS
    for text in ["-".join(layers + ["M"]), bare[:-1] + ", ('maxp', [('pool_size', 2)])]"]:
        with pytest.raises(GenomeParseError, match=f"{MAX_GENOME_LAYERS + 1:,} layers"):
            parse_genome(text)


HOSTILE = {
    "1 MB compact": "16-" * 333_333 + "M",
    "1 MB tuple form": "[" + "('conv', [('nb_filter', 16)]), " * 32_000 + "]",
    "100,000 brackets": "(" * 100_000,
    "100,000 list brackets": "[" * 50_000 + "]" * 50_000,
    "minus chain": "[" + "-" * 100_000 + "1]",
    "plus chain": "[" + "1+" * 100_000 + "1]",
    "not chain": "[" + "not " * 20_000 + "1]",
    "6 levels": "[[[[[[('conv', [('nb_filter', 16)])]]]]]]",
    "5,000-digit count": "16-" + "9" * 5000 + "-M",
    "5,000-digit tuple count": "[('conv', [('nb_filter', " + "9" * 5000 + ")])]",
    "count over the maximum": f"16-{MAX_FILTERS + 1}-M",
    "tuple count over the maximum": f"[('conv', [('nb_filter', {MAX_FILTERS + 1})])]",
    "100 kB token": "16-" + "x" * 100_000 + "-M",
    "100 kB string layer": "['" + "a" * 100_000 + "']",
    "NaN score": "('a', 'nan', [('conv', [('nb_filter', 16)])])",
    "infinite score": "('a', 1e999, [('conv', [('nb_filter', 16)])])",
    "huge score": "('a', " + "9" * 400 + ", [('conv', [('nb_filter', 16)])])",
    "unhashable": "[{[1]: 2}]",
    "10,000 empty layers": "-" * 10_000,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_genome_text_is_one_short_line(name):
    with pytest.raises(GenomeParseError) as info:
        parse_genome(HOSTILE[name])
    message = str(info.value)
    assert "\n" not in message and len(message) < 250, message


def test_refused_counts_are_named():
    with pytest.raises(GenomeParseError, match="5,000-digit filter count at character 4"):
        parse_genome(HOSTILE["5,000-digit count"])
    with pytest.raises(GenomeParseError, match=f"{MAX_FILTERS + 1} filters"):
        parse_genome(HOSTILE["count over the maximum"])
    with pytest.raises(GenomeParseError, match="nested 100,000 brackets deep"):
        parse_genome(HOSTILE["100,000 brackets"])
    with pytest.raises(GenomeParseError, match="longer than the 500,000 read"):
        parse_genome(HOSTILE["1 MB compact"])
    with pytest.raises(ValueError, match=f"1..{MAX_FILTERS}, got <a number of about 5,000 digits>"):
        Genome((Conv(10**5000),))


def test_shorten_keeps_the_ends_of_a_long_genome_and_says_its_length():
    long = "-".join(["16", "32"] * 4999 + ["M", "64"])
    short = shorten(long)
    assert short.startswith("16-32-") and short.endswith("-32-M-64 (10,000 layers)") and "-...-" in short
    assert shorten("32-M") == "32-M"
    assert shorten("x" * 1000, 21) == "xxxxxxxxx...xxxxxxxxx (1,000 characters)"
    assert shorten("a-long-hyphenated-name-of-something-that-is-not-a-genome-at-all").endswith("(63 characters)")


@given(st.text(max_size=400), st.integers(10, 120))
def test_shorten_is_one_line_of_bounded_length(text, limit):
    short = shorten(text, limit)
    assert "\n" not in short and len(short) <= limit + len(" (1,000,000 characters)")
    if len(" ".join(text.split())) <= limit:
        assert short == " ".join(text.split())


def test_one_line_squeezes_an_error_and_cuts_it_at_one_length():
    assert one_line(ValueError("bad\n  value\tthere ")) == "bad value there"
    cut = one_line("x" * 1000)
    assert len(cut) == ONE_LINE_LIMIT and cut.endswith("...")
    assert one_line("x" * 1000, None) == "x" * 1000 and one_line("a b c d", 5) == "a ..."
    assert one_line(ValueError()) == ""


def test_shown_never_fails_on_huge_values():
    assert shown(10**5000) == "<a number of about 5,000 digits>"
    assert shown(10**400) == "<a number of 401 digits>"
    assert shown([10**5000]) == "<a list too large to show>"
    assert shown("32") == "'32'"


@pytest.mark.parametrize("filters, words", [
    ([16, 10**400], "got <a number of 401 digits>"),
    ([16, 10**5000], "got <a number of about 5,000 digits>"),
    ([16, float("nan")], "got nan"),
    ([16, float("inf")], "got inf"),
    ([16, MAX_FILTERS + 1], f"got {MAX_FILTERS + 1}"),
    (None, "filters must be a list"),
    ("16,32", "filters must be a list"),
])
def test_filter_sets_are_refused_with_short_messages(filters, words):
    with pytest.raises(ValueError, match=words):
        normalize_filters(filters)
