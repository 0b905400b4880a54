"""Shape arithmetic without torch: the layer plan, effective layers, parameters, FLOPs, caps."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.genome import Conv, Genome, MaxPool, parse_genome
from alife_nas.shapes import BYTES_PER_PARAM, check_caps, describe_genome, effective_layers, layer_plan, training_memory

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
def test_effective_layers_skipped_pools_and_output_shape(text, shape, effective, skipped, out):
    genome = parse_genome(text)
    info = describe_genome(genome, shape, 10)
    assert (info.effective_layers, info.skipped_pools, info.output_shape) == (effective, skipped, out)
    assert info.genome == text and info.genome_layers == len(genome)
    built, n_skipped = effective_layers(genome, shape[1], shape[2])
    assert "-".join(map(str, built)) == effective and n_skipped == skipped


def test_layer_plan_step_by_step():
    plan = layer_plan(parse_genome("16-M-M-M-M-32"), (1, 8, 8))
    assert [(s.number, str(s.layer), s.skipped, s.shape) for s in plan] == [
        (1, "16", False, (16, 8, 8)),
        (2, "M", False, (16, 4, 4)),
        (3, "M", False, (16, 2, 2)),
        (4, "M", False, (16, 1, 1)),
        (5, "M", True, (16, 1, 1)),  # already 1x1: skipped, the shape stays
        (6, "32", False, (32, 1, 1)),
    ]
    assert [s.in_shape for s in plan[1:]] == [s.shape for s in plan[:-1]]
    assert plan[0].params == 1 * 16 * 9 + 16 and plan[0].macs == 16 * 9 * 64
    assert plan[5].params == 16 * 32 * 9 + 32 and plan[5].macs == 16 * 32 * 9
    assert all(s.params == s.macs == 0 for s in plan[1:5])
    with pytest.raises(ValueError, match="bad input shape"):
        layer_plan(parse_genome("16"), (1, 0, 8))


def test_param_count_and_flops_by_hand():
    # 16-M on 8x8x1, 10 classes: conv 1*16*9+16; pool to 16x4x4=256; dense 256*512+512; classifier 512*10+10
    info = describe_genome(parse_genome("16-M"), (1, 8, 8), 10)
    assert info.params == (1 * 16 * 9 + 16) + (256 * 512 + 512) + (512 * 10 + 10) == 136_874
    # FLOPs = 2 * multiply-adds: conv 16*9*(8*8) + dense 256*512 + classifier 512*10
    assert info.flops == 2 * (16 * 9 * 64 + 256 * 512 + 512 * 10)
    # a different head width and class count
    info = describe_genome(parse_genome("8-8"), (3, 4, 4), 5, hidden=32)
    assert info.params == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 16 * 32 + 32) + (32 * 5 + 5)


def test_check_caps():
    info = describe_genome(parse_genome("16-M-32-M"), (1, 8, 8), 10)
    assert check_caps(info, 40, 25_000_000) is None
    assert check_caps(info, 0, 0) is None  # 0 = no cap
    assert check_caps(info, 3, None) == "genome has 4 layers, more than the cap of 3 (max_layers)"
    reason = check_caps(info, None, 1000)
    assert "parameters" in reason and "1,000" in reason and reason.endswith("(max_params)")
    assert "--" not in check_caps(info, 3, None) + reason  # no command-line flags: the API is used without a CLI


def test_flops_cap():
    info = describe_genome(parse_genome("16-M-32-M"), (1, 8, 8), 10)
    assert check_caps(info, 40, 0, 0.0, 128, max_flops=info.flops) is None  # at the cap: allowed
    assert check_caps(info, 40, 0, 0.0, 128, max_flops=0) is None  # 0 = no cap
    reason = check_caps(info, 40, 0, 0.0, 128, max_flops=info.flops - 1)
    assert reason == (f"network needs {info.flops:,} FLOPs per image (forward), more than the cap of "
                      f"{info.flops - 1:,} (max_flops)")
    assert check_caps(info, 40, 1000, 0.0, 128, max_flops=1).endswith("(max_params)")  # the first cap met says why


def test_memory_cap_and_its_arithmetic():
    info = describe_genome(parse_genome("16-M"), (1, 8, 8), 10)
    # kept per image: the input, the conv's map, the pool's map, the hidden layer and the logits
    assert info.activations == 64 + 16 * 64 + 16 * 16 + 512 + 10
    assert training_memory(info, 128) == BYTES_PER_PARAM * info.params + 2 * 4 * 128 * info.activations
    bn = describe_genome(parse_genome("16-M"), (1, 8, 8), 10, batchnorm=True)
    assert bn.activations == info.activations + 16 * 64  # the norm's output as well as the conv's
    assert bn.params == info.params + 16  # 2 per filter for the norm, minus the conv's bias
    assert check_caps(info, 40, 0, 16.0, 128) is None
    reason = check_caps(info, 40, 0, training_memory(info, 128) / 2**30 * 0.99, 128)
    assert reason.startswith("a training needs about") and reason.endswith("(max_memory)") and "batch 128" in reason
    assert check_caps(info, 40, 0, 0.0, 128) is None  # 0 = no cap


@pytest.mark.parametrize("shape,head,most", [((3, 32, 32), "flatten", 16.0), ((3, 128, 128), "gap", 16.0)])
def test_every_network_an_initial_population_can_hold_fits_the_default_memory_cap(shape, head, most):
    """The seed's input with the seed's head, and 128x128 with gap: the largest one-layer genomes
    (what neuralfinder's and regularized's initial genomes are) stay under the default cap."""
    from alife_nas.settings import TrainSettings

    assert TrainSettings().max_memory == most and TrainSettings().max_params == 0
    for genome in ("512", "512-M"):
        info = describe_genome(parse_genome(genome), shape, 100, head=head)
        assert check_caps(info, 40, 0, most, 128) is None, genome
    # the deepest random genome of the seed's filters (12 unpooled 512-filter convs) at 3x32x32 too
    deepest = describe_genome(parse_genome("-".join(["512"] * 12)), (3, 32, 32), 100)
    assert check_caps(deepest, 40, 0, most, 128) is None
    # at 3x128x128 the seed's head makes a one-layer 512 need over 60 GiB
    assert training_memory(describe_genome(parse_genome("512"), (3, 128, 128), 10), 128) > 60 * 2**30


def test_bad_shapes_refused():
    with pytest.raises(ValueError):
        describe_genome(parse_genome("16"), (0, 8, 8), 10)
    with pytest.raises(ValueError):
        describe_genome(parse_genome("16"), (1, 8, 8), 0)


def test_to_dict_is_json_safe():
    info = describe_genome(parse_genome("16-M"), (1, 8, 8), 10)
    assert json.loads(json.dumps(info.to_dict()))["output_shape"] == [16, 4, 4]


def test_shapes_imports_no_torch():
    code = "import sys, alife_nas.shapes; print('torch' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]  # so the package imports without an install too
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


layers = st.lists(st.one_of(st.sampled_from([1, 4, 8, 16, 192]).map(Conv), st.just(MaxPool())), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(layers=layers, h=st.integers(1, 40), w=st.integers(1, 40), c=st.integers(1, 4))
def test_plan_agrees_with_describe_genome(layers, h, w, c):
    genome = Genome(tuple(layers))
    plan = layer_plan(genome, (c, h, w))
    info = describe_genome(genome, (c, h, w), 3, hidden=16)
    assert [s.number for s in plan] == list(range(1, len(genome) + 1)) and [s.layer for s in plan] == list(genome)
    assert plan[-1].shape == info.output_shape
    built = [s for s in plan if not s.skipped]
    assert len(built) == (len(info.effective_layers.split("-")) if info.effective_layers else 0)
    assert len(plan) - len(built) == info.skipped_pools
    assert all(isinstance(s.layer, MaxPool) and min(s.in_shape[1:]) < 2 for s in plan if s.skipped)


def test_evaluation_batch_shrinks_only_where_a_pass_would_outgrow_the_memory_cap():
    from alife_nas.shapes import evaluation_batch

    small = describe_genome(parse_genome("16-M-32-M"), (1, 8, 8), 10)
    assert evaluation_batch(small, 1024, 16.0) == 1024
    wide = describe_genome(parse_genome("512"), (3, 128, 128), 10, head="gap")
    assert wide.largest_map == 3 * 128 * 128 + 512 * 128 * 128
    # 1024 images of 512x128x128 maps are 34 GB: the largest batch under 16 GiB instead
    assert evaluation_batch(wide, 1024, 16.0) == 16 * 2**30 // (4 * wide.largest_map) == 509
    assert evaluation_batch(wide, 1024, 0.0) == 1024  # no cap, no limit
