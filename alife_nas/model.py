"""Genome -> PyTorch network, plus the pure arithmetic (shapes, parameters, FLOPs) behind it.

A network is the genome's layers followed by the fixed NeuralFinder head (SPEC §2):

    [conv3x3(f) + ReLU | maxpool2x2] * len(genome) -> flatten -> Linear(hidden) + ReLU
    -> Dropout(0.5) -> Linear(num_classes)

A max-pool that would shrink the feature map below 1x1 (H or W < 2) is skipped when the network
is built; the genome itself is kept as is and :class:`ModelInfo` records the layers actually
built. :func:`describe_genome` is pure arithmetic, so caps are checked before anything is built.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from alife_nas.genome import Conv, Genome, Layer

__all__ = ["ModelInfo", "GenomeNet", "describe_genome", "build_model", "check_caps", "count_params", "INITS"]

#: Weight initialisations build_model knows; 'glorot' is Keras' default (the seed used Keras).
INITS = ("glorot", "kaiming", "torch")


@dataclass(frozen=True)
class ModelInfo:
    """What a genome becomes on a given input: built layers, size and cost.

    ``flops`` counts 2 FLOPs per multiply-add of the conv and linear layers for ONE image's
    forward pass (biases, ReLU, pooling and dropout are not counted).
    ``effective_layers`` is the compact form of the layers actually built ('' if none are).
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        d["input_shape"] = list(self.input_shape)
        return d


def _effective_layers(genome: Genome, height: int, width: int) -> tuple[list[Layer], int]:
    """The layers actually built, and how many pools were skipped (map already < 2 pixels)."""
    built: list[Layer] = []
    skipped = 0
    for layer in genome:
        if isinstance(layer, Conv):
            built.append(layer)
        elif height < 2 or width < 2:
            skipped += 1
        else:
            height, width = height // 2, width // 2
            built.append(layer)
    return built, skipped


def describe_genome(
    genome: Genome, input_shape: tuple[int, int, int], num_classes: int, hidden: int = 512
) -> ModelInfo:
    """Effective layers, parameter count and forward FLOPs per image, without building anything."""
    channels, height, width = (int(v) for v in input_shape)
    if min(channels, height, width) < 1 or num_classes < 1 or hidden < 1:
        raise ValueError(f"bad model shape: input {input_shape}, {num_classes} classes, hidden {hidden}")
    built, skipped = _effective_layers(genome, height, width)
    params = 0
    macs = 0
    for layer in built:
        if isinstance(layer, Conv):
            params += channels * layer.filters * 9 + layer.filters
            macs += channels * layer.filters * 9 * height * width
            channels = layer.filters
        else:
            height, width = height // 2, width // 2
    flat = channels * height * width
    params += flat * hidden + hidden + hidden * num_classes + num_classes
    macs += flat * hidden + hidden * num_classes
    return ModelInfo(
        genome=str(genome),
        genome_layers=len(genome),
        effective_layers="-".join(str(layer) for layer in built),
        skipped_pools=skipped,
        params=params,
        flops=2 * macs,
        output_shape=(channels, height, width),
        input_shape=(int(input_shape[0]), int(input_shape[1]), int(input_shape[2])),
        num_classes=num_classes,
        hidden=hidden,
    )


def check_caps(info: ModelInfo, max_layers: int | None, max_params: int | None) -> str | None:
    """Reason the genome is too large to train (layer count of the genome, parameters), or None."""
    if max_layers is not None and max_layers > 0 and info.genome_layers > max_layers:
        return f"genome has {info.genome_layers} layers, more than the cap of {max_layers} (--max-layers)"
    if max_params is not None and max_params > 0 and info.params > max_params:
        return f"network has {info.params:,} parameters, more than the cap of {max_params:,} (--max-params)"
    return None


class GenomeNet(nn.Module):
    """The built network. ``classifier`` is the last Linear (the trainer puts L2 on its weight)."""

    def __init__(self, info: ModelInfo, features: nn.Sequential) -> None:
        super().__init__()
        self.info = info
        self.features = features
        channels, height, width = info.output_shape
        self.hidden = nn.Linear(channels * height * width, info.hidden)
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(info.hidden, info.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        x = self.dropout(torch.relu(self.hidden(x)))
        return self.classifier(x)


def _init_weights(model: nn.Module, init: str) -> None:
    if init == "torch":  # PyTorch's own defaults, as constructed
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if init == "glorot":  # Keras default: glorot_uniform weights, zero bias
                nn.init.xavier_uniform_(module.weight)
            else:  # 'kaiming': He normal for ReLU, keeps activations alive in deep plain nets
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


def build_model(
    genome: Genome,
    input_shape: tuple[int, int, int],
    num_classes: int,
    hidden: int = 512,
    init: str = "glorot",
) -> GenomeNet:
    """Build the network for ``genome`` (weights drawn from torch's global RNG; seed it first)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    info = describe_genome(genome, input_shape, num_classes, hidden)
    layers: list[nn.Module] = []
    channels = info.input_shape[0]
    for layer in _effective_layers(genome, info.input_shape[1], info.input_shape[2])[0]:
        if isinstance(layer, Conv):
            layers += [nn.Conv2d(channels, layer.filters, 3, padding=1), nn.ReLU(inplace=True)]
            channels = layer.filters
        else:
            layers.append(nn.MaxPool2d(2, 2))
    model = GenomeNet(info, nn.Sequential(*layers))
    _init_weights(model, init)
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters of a built module."""
    return sum(p.numel() for p in model.parameters())

