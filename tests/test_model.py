"""Model builder: shapes, effective layers, parameter counts and FLOPs, caps."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.genome import Conv, Genome, MaxPool, parse_genome
from alife_nas.model import GenomeNet, build_model, check_caps, count_params, describe_genome

CASES = [
    # genome, input shape, effective layers, skipped pools, shape after the genome's layers
    ("16-M", (1, 8, 8), "16-M", 0, (16, 4, 4)),
    ("32-M-64-M", (1, 8, 8), "32-M-64-M", 0, (64, 2, 2)),
    ("M-M", (1, 8, 8), "M-M", 0, (1, 2, 2)),
    ("M-M-M-M", (1, 8, 8), "M-M-M", 1, (1, 1, 1)),
    ("16-M-M-M-M-M", (1, 8, 8), "16-M-M-M", 2, (16, 1, 1)),
    ("16-M-16-M-16-M-16-M", (1, 8, 8), "16-M-16-M-16-M-16", 1, (16, 1, 1)),
    ("32-192-192-M-128-192-M", (3, 32, 32), "32-192-192-M-128-192-M", 0, (192, 8, 8)),
    ("M-M-M-M-M-M-M", (3, 32, 32), "M-M-M-M-M", 2, (3, 1, 1)),
    ("16-M-32-M", (3, 32, 32), "16-M-32-M", 0, (32, 8, 8)),
    ("M-M", (1, 3, 5), "M", 1, (1, 1, 2)),  # 3x5 -> 1x2: the second pool would reach 0 rows
    ("M", (3, 1, 1), "", 1, (3, 1, 1)),  # nothing built at all: the head sits on the input
]


@pytest.mark.parametrize("text,shape,effective,skipped,out", CASES)
def test_shapes_and_param_counts(text, shape, effective, skipped, out):
    genome = parse_genome(text)
    info = describe_genome(genome, shape, 10)
    assert (info.effective_layers, info.skipped_pools, info.output_shape) == (effective, skipped, out)
    assert info.genome == text and info.genome_layers == len(genome)
    torch.manual_seed(0)
    model = build_model(genome, shape, 10)
    assert count_params(model) == info.params
    x = torch.randn(3, *shape)
    assert tuple(model.features(x).shape[1:]) == out
    logits = model(x)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_param_count_and_flops_by_hand():
    # 16-M on 8x8x1, 10 classes: conv 1*16*9+16; pool to 16x4x4=256; dense 256*512+512; classifier 512*10+10
    info = describe_genome(parse_genome("16-M"), (1, 8, 8), 10)
    assert info.params == (1 * 16 * 9 + 16) + (256 * 512 + 512) + (512 * 10 + 10) == 136_874
    # FLOPs = 2 * multiply-adds: conv 16*9*(8*8) + dense 256*512 + classifier 512*10
    assert info.flops == 2 * (16 * 9 * 64 + 256 * 512 + 512 * 10)
    # a different head width and class count
    info = describe_genome(parse_genome("8-8"), (3, 4, 4), 5, hidden=32)
    assert info.params == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 16 * 32 + 32) + (32 * 5 + 5)
    assert count_params(build_model(parse_genome("8-8"), (3, 4, 4), 5, hidden=32)) == info.params


def test_head_layout_and_classifier():
    model = build_model(parse_genome("16-M"), (1, 8, 8), 7)
    assert isinstance(model, GenomeNet)
    assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.out_features == 7
    assert model.hidden.out_features == 512 and model.dropout.p == 0.5
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].kernel_size == (3, 3) and convs[0].padding == (1, 1) and convs[0].bias is not None
    assert isinstance(model.features[1], torch.nn.ReLU) and isinstance(model.features[2], torch.nn.MaxPool2d)
    assert model.info.params == count_params(model)


def test_build_is_seeded_by_global_rng_and_inits_differ():
    g = parse_genome("16-M")
    torch.manual_seed(3)
    a = build_model(g, (1, 8, 8), 10)
    torch.manual_seed(3)
    b = build_model(g, (1, 8, 8), 10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    for init in ("glorot", "kaiming", "torch"):
        m = build_model(g, (1, 8, 8), 10, init=init)
        assert count_params(m) == describe_genome(g, (1, 8, 8), 10).params
    with pytest.raises(ValueError, match="unknown init"):
        build_model(g, (1, 8, 8), 10, init="zeros")


def test_check_caps():
    info = describe_genome(parse_genome("16-M-32-M"), (1, 8, 8), 10)
    assert check_caps(info, 40, 25_000_000) is None
    assert check_caps(info, 0, 0) is None  # 0 = no cap
    assert "4 layers" in check_caps(info, 3, None) and "cap of 3" in check_caps(info, 3, None)
    reason = check_caps(info, None, 1000)
    assert "parameters" in reason and "1,000" in reason


def test_bad_shapes_refused():
    with pytest.raises(ValueError):
        describe_genome(parse_genome("16"), (0, 8, 8), 10)
    with pytest.raises(ValueError):
        describe_genome(parse_genome("16"), (1, 8, 8), 0)


def test_to_dict_is_json_safe():
    import json

    info = describe_genome(parse_genome("16-M"), (1, 8, 8), 10)
    assert json.loads(json.dumps(info.to_dict()))["output_shape"] == [16, 4, 4]


layers = st.lists(st.one_of(st.sampled_from([4, 8, 16]).map(Conv), st.just(MaxPool())), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(layers=layers, h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 3))
def test_describe_matches_built_model(layers, h, w, c):
    genome = Genome(tuple(layers))
    info = describe_genome(genome, (c, h, w), 3, hidden=16)
    model = build_model(genome, (c, h, w), 3, hidden=16)
    assert count_params(model) == info.params
    assert tuple(model.features(torch.zeros(1, c, h, w)).shape[1:]) == info.output_shape
    assert info.genome_layers == len(genome) == len(info.effective_layers.split("-")) * bool(info.effective_layers) + info.skipped_pools
