"""Model builder: the built torch modules agree with the shape arithmetic (tests/test_shapes.py)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.genome import Conv, Genome, MaxPool, parse_genome
from alife_nas.model import GenomeNet, build_model, count_params, describe_genome
from tests.test_shapes import CASES


@pytest.mark.parametrize("text,shape,effective,skipped,out", CASES)
def test_built_model_matches_describe_genome(text, shape, effective, skipped, out):
    genome = parse_genome(text)
    info = describe_genome(genome, shape, 10)
    torch.manual_seed(0)
    model = build_model(genome, shape, 10)
    assert model.info == info and count_params(model) == info.params
    x = torch.randn(3, *shape)
    assert tuple(model.features(x).shape[1:]) == out
    logits = model(x)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_param_count_of_a_built_model():
    info = describe_genome(parse_genome("8-8"), (3, 4, 4), 5, hidden=32)
    assert count_params(build_model(parse_genome("8-8"), (3, 4, 4), 5, hidden=32)) == info.params


def test_old_imports_keep_working():
    from alife_nas import model, shapes

    assert (model.INITS, model.ModelInfo, model.describe_genome, model.check_caps) == (
        shapes.INITS, shapes.ModelInfo, shapes.describe_genome, shapes.check_caps)


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


layers = st.lists(st.one_of(st.sampled_from([4, 8, 16]).map(Conv), st.just(MaxPool())), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(layers=layers, h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 3),
       head=st.sampled_from(["flatten", "gap"]), batchnorm=st.booleans())
def test_describe_matches_built_model(layers, h, w, c, head, batchnorm):
    genome = Genome(tuple(layers))
    info = describe_genome(genome, (c, h, w), 3, 16, head, batchnorm)
    model = build_model(genome, (c, h, w), 3, hidden=16, head=head, batchnorm=batchnorm)
    assert count_params(model) == info.params
    assert model.hidden.in_features == info.dense_inputs
    assert model.eval()(torch.zeros(2, c, h, w)).shape == (2, 3)
    assert tuple(model.features(torch.zeros(1, c, h, w)).shape[1:]) == info.output_shape
    assert info.genome_layers == len(genome) == len(info.effective_layers.split("-")) * bool(info.effective_layers) + info.skipped_pools


def test_gap_head_and_batchnorm_layout():
    """gap: each channel's mean feeds the dense layer (its size no longer grows with the input);
    batchnorm: conv without bias -> BatchNorm2d -> ReLU."""
    small = describe_genome(parse_genome("16-M-32"), (3, 32, 32), 10, head="gap")
    large = describe_genome(parse_genome("16-M-32"), (3, 128, 128), 10, head="gap")
    assert small.params == large.params and small.dense_inputs == 32
    assert describe_genome(parse_genome("16-M-32"), (3, 32, 32), 10).dense_inputs == 32 * 16 * 16
    model = build_model(parse_genome("16-M-32"), (3, 32, 32), 10, head="gap", batchnorm=True)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU"]
    assert all(m.bias is None for m in model.features if isinstance(m, torch.nn.Conv2d))
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    expected = model.classifier(model.dropout(torch.relu(model.hidden(model.features(x).mean((2, 3))))))
    assert torch.allclose(model(x), expected)
    with pytest.raises(ValueError, match="unknown head"):
        describe_genome(parse_genome("16"), (1, 8, 8), 10, head="avg")
