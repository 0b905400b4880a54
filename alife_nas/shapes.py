"""Shape arithmetic of a genome's network: the layers built, map shapes, parameters, FLOPs, caps.

A network is the genome's layers followed by the fixed NeuralFinder head
(docs/training.md, "The model"):

    [conv3x3(f) + ReLU | maxpool2x2] * len(genome) -> flatten -> Linear(hidden) + ReLU
    -> Dropout(0.5) -> Linear(num_classes)

Two choices beyond the seed, both off by default: ``head="gap"`` averages each channel over
the map before the dense layer (global average pooling, so the network's size no longer grows
with the input), and ``batchnorm=True`` puts a batch normalisation between every conv (then
without its bias) and its ReLU.

A max-pool that would shrink the feature map below 1x1 (H or W < 2) is skipped; the genome
itself is kept as is. :func:`layer_plan` is the one walk over a genome that decides this, and
the builder (``alife_nas.model``), the standalone PyTorch export and :func:`describe_genome` all
follow it. No torch here, so caps can be checked (and exports written) without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from alife_nas.genome import Conv, Genome, Layer

__all__ = [
    "INITS",
    "HEADS",
    "BYTES_PER_PARAM",
    "ModelInfo",
    "PlannedLayer",
    "layer_plan",
    "effective_layers",
    "describe_genome",
    "check_caps",
    "training_memory",
    "evaluation_batch",
]

#: Weight initialisations the builder knows; 'glorot' is Keras' default (the seed used Keras).
INITS = ("glorot", "kaiming", "torch")

#: The heads a network can end in: the seed's ``flatten`` (the whole last map feeds the dense
#: layer) or ``gap`` (the mean of each channel does).
HEADS = ("flatten", "gap")

#: Training memory per parameter, fp32: the weight, its gradient and two optimiser buffers
#: (SGD's momentum; AdamW's two moments).
BYTES_PER_PARAM = 16

Shape = tuple[int, int, int]  # (C, H, W)


@dataclass(frozen=True)
class PlannedLayer:
    """One genome layer on a given input: what it does to the map and what it costs.

    ``skipped`` is True for a max-pool on a map already below 2 pixels (it is not built);
    ``in_shape``/``shape`` are (C, H, W) before/after it (equal when skipped). ``params`` and
    ``macs`` (multiply-adds, one image, forward) are 0 for pools. ``batchnorm`` marks a conv
    built without bias and followed by a BatchNorm2d (its 2 x filters parameters are in ``params``).
    """

    number: int  # 1-based position in the genome
    layer: Layer
    skipped: bool
    in_shape: Shape
    shape: Shape
    params: int
    macs: int
    batchnorm: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """What a genome becomes on a given input: built layers, size and cost.

    ``flops`` counts 2 FLOPs per multiply-add of the conv and linear layers for ONE image's
    forward pass (biases, ReLU, pooling and dropout are not counted).
    ``effective_layers`` is the compact form of the layers actually built ('' if none are).
    ``activations`` is the number of values one image's forward pass keeps for the backward pass
    (the input and every built layer's output; two per conv with batch normalisation);
    ``largest_map`` the most values one layer holds at once without gradients (its input and
    output): what an evaluation pass needs per image.
    """

    genome: str
    genome_layers: int
    effective_layers: str
    skipped_pools: int
    params: int
    flops: int
    output_shape: tuple[int, int, int]  # (C, H, W) after the genome's layers, before the head
    input_shape: tuple[int, int, int]
    num_classes: int
    hidden: int
    head: str = "flatten"
    batchnorm: bool = False
    activations: int = 0
    largest_map: int = 0

    @property
    def dense_inputs(self) -> int:
        """Values the head's dense layer reads: the whole last map (flatten) or one per channel (gap)."""
        channels, height, width = self.output_shape
        return channels if self.head == "gap" else channels * height * width

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        d["input_shape"] = list(self.input_shape)
        return d


def _plan_step(number: int, layer: Layer, shape: Shape, batchnorm: bool = False) -> PlannedLayer:
    """One layer applied to a (C, H, W) map: 'same' 3x3 conv, 2x2/2 pool, or a skipped pool."""
    channels, height, width = shape
    if isinstance(layer, Conv):
        f = layer.filters
        # with batch normalisation the conv's bias is redundant (the norm's shift replaces it)
        params = channels * f * 9 + (2 * f if batchnorm else f)
        macs = channels * f * 9 * height * width
        return PlannedLayer(number, layer, False, shape, (f, height, width), params, macs, batchnorm)
    if height < 2 or width < 2:  # a pool here would leave an empty map
        return PlannedLayer(number, layer, True, shape, shape, 0, 0)
    return PlannedLayer(number, layer, False, shape, (channels, height // 2, width // 2), 0, 0)


def layer_plan(genome: Genome, input_shape: Sequence[int], batchnorm: bool = False) -> list[PlannedLayer]:
    """Every layer of ``genome`` on a (C, H, W) input, in order: skipped or not, shape after, cost."""
    shape: Shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    if min(shape) < 1:
        raise ValueError(f"bad input shape {tuple(input_shape)}: channels, height and width must be at least 1")
    plan: list[PlannedLayer] = []
    for number, layer in enumerate(genome, start=1):
        step = _plan_step(number, layer, shape, batchnorm)
        plan.append(step)
        shape = step.shape
    return plan


def effective_layers(genome: Genome, height: int, width: int) -> tuple[list[Layer], int]:
    """The layers actually built on an H x W input, and how many pools were skipped."""
    plan = layer_plan(genome, (1, height, width))  # channels do not change which pools are skipped
    return [step.layer for step in plan if not step.skipped], sum(step.skipped for step in plan)


def describe_genome(
    genome: Genome, input_shape: tuple[int, int, int], num_classes: int, hidden: int = 512,
    head: str = "flatten", batchnorm: bool = False,
) -> ModelInfo:
    """Effective layers, parameter count and forward FLOPs per image, without building anything."""
    channels, height, width = (int(v) for v in input_shape)
    if min(channels, height, width) < 1 or num_classes < 1 or hidden < 1:
        raise ValueError(f"bad model shape: input {input_shape}, {num_classes} classes, hidden {hidden}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
    plan = layer_plan(genome, (channels, height, width), batchnorm)
    output_shape = plan[-1].shape if plan else (channels, height, width)
    flat = output_shape[0] if head == "gap" else output_shape[0] * output_shape[1] * output_shape[2]
    head_params = flat * hidden + hidden + hidden * num_classes + num_classes
    head_macs = flat * hidden + hidden * num_classes
    built = [step for step in plan if not step.skipped]
    kept = channels * height * width + hidden + num_classes
    largest = channels * height * width
    for step in built:
        c, h, w = step.shape
        kept += c * h * w * (2 if step.batchnorm else 1)
        largest = max(largest, step.in_shape[0] * step.in_shape[1] * step.in_shape[2] + c * h * w)
    return ModelInfo(
        genome=str(genome),
        genome_layers=len(genome),
        effective_layers="-".join(str(step.layer) for step in built),
        skipped_pools=len(plan) - len(built),
        params=sum(step.params for step in plan) + head_params,
        flops=2 * (sum(step.macs for step in plan) + head_macs),
        output_shape=output_shape,
        input_shape=(channels, height, width),
        num_classes=num_classes,
        hidden=hidden,
        head=head,
        batchnorm=batchnorm,
        activations=kept,
        largest_map=largest,
    )


def training_memory(info: ModelInfo, batch_size: int) -> int:
    """Estimated bytes a training of this network needs at its peak, fp32 (docs/training.md, "Caps").

    ``BYTES_PER_PARAM`` a parameter (weight, gradient, two optimiser buffers), plus the values a
    batch's forward pass keeps for the backward pass, twice (their gradients are as large). It is
    an estimate from the shapes alone, for refusing the hopeless before anything is allocated;
    measured peaks on CPU are in docs/training.md.
    """
    return BYTES_PER_PARAM * info.params + 2 * 4 * int(batch_size) * info.activations


def evaluation_batch(info: ModelInfo, eval_batch_size: int, max_memory: float | None) -> int:
    """The batch size of a network's validation and test passes: ``eval_batch_size``, unless one
    pass's largest maps at that size (fp32, input and output of a layer) would need more than
    the ``max_memory`` cap (GiB), then the largest batch that fits (at least 1). Large images with
    wide unpooled convs only; results do not depend on it."""
    if not max_memory or max_memory <= 0:
        return eval_batch_size
    fits = int(max_memory * 2**30 // (4 * max(1, info.largest_map)))
    return max(1, min(eval_batch_size, fits))


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def check_caps(info: ModelInfo, max_layers: int | None, max_params: int | None,
               max_memory: float | None = None, batch_size: int = 128, max_flops: int | None = None) -> str | None:
    """Reason the genome is too large to train (layers, parameters, forward FLOPs per image,
    estimated memory), or None.

    ``max_memory`` is in GiB, against :func:`training_memory` at ``batch_size``. The message
    names the setting, not a command-line flag: caps come from the CLI, config files and the
    Python API alike.
    """
    if max_layers is not None and max_layers > 0 and info.genome_layers > max_layers:
        return f"genome has {info.genome_layers} layers, more than the cap of {max_layers} (max_layers)"
    if max_params is not None and max_params > 0 and info.params > max_params:
        return f"network has {info.params:,} parameters, more than the cap of {max_params:,} (max_params)"
    if max_flops is not None and max_flops > 0 and info.flops > max_flops:
        return (f"network needs {info.flops:,} FLOPs per image (forward), more than the cap of {max_flops:,} "
                "(max_flops)")
    if max_memory is not None and max_memory > 0:
        need = training_memory(info, batch_size)
        if need > max_memory * 2**30:
            return (f"a training needs about {_gib(need)} ({info.params:,} parameters, batch {batch_size}), "
                    f"more than the cap of {max_memory:g} GiB (max_memory)")
    return None
