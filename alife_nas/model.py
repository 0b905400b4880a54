"""Genome -> PyTorch network (the torch part; the shape arithmetic lives in ``alife_nas.shapes``).

The network is the genome's layers followed by the fixed NeuralFinder head
(docs/training.md, "The model"):

    [conv3x3(f) + ReLU | maxpool2x2] * len(genome) -> flatten -> Linear(hidden) + ReLU
    -> Dropout(0.5) -> Linear(num_classes)

(``head="gap"``: each channel's mean instead of flatten; ``batchnorm=True``: conv without bias
-> BatchNorm2d -> ReLU.) :func:`build_model` builds exactly the layers of :func:`alife_nas.shapes.layer_plan` (max-pools
on a map already below 2 pixels are skipped) and attaches the :class:`ModelInfo`. ``INITS``,
``ModelInfo``, ``describe_genome`` and ``check_caps`` are re-exported from ``alife_nas.shapes``
so existing imports keep working.
"""
from __future__ import annotations

import torch
from torch import nn

from alife_nas.genome import Conv, Genome
from alife_nas.shapes import INITS, ModelInfo, check_caps, describe_genome, layer_plan

__all__ = ["ModelInfo", "GenomeNet", "describe_genome", "build_model", "check_caps", "count_params", "INITS"]


class GenomeNet(nn.Module):
    """The built network. ``classifier`` is the last Linear (the trainer puts L2 on its weight)."""

    def __init__(self, info: ModelInfo, features: nn.Sequential) -> None:
        super().__init__()
        self.info = info
        self.features = features
        self.gap = info.head == "gap"
        self.hidden = nn.Linear(info.dense_inputs, info.hidden)
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(info.hidden, info.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean((2, 3)) if self.gap else torch.flatten(x, 1)
        x = self.dropout(torch.relu(self.hidden(x)))
        return self.classifier(x)


def _init_weights(model: nn.Module, init: str) -> None:
    """Apply the named initialisation to every conv and linear layer (see ``INITS``)."""
    if init == "torch":  # PyTorch's own defaults, as constructed
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if init == "glorot":  # Keras default: glorot_uniform weights, zero bias
                nn.init.xavier_uniform_(module.weight)
            else:  # 'kaiming': He normal for ReLU, keeps activations alive in deep plain nets
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:  # a conv before batch normalisation has none
                nn.init.zeros_(module.bias)


def build_model(
    genome: Genome,
    input_shape: tuple[int, int, int],
    num_classes: int,
    hidden: int = 512,
    init: str = "glorot",
    head: str = "flatten",
    batchnorm: bool = False,
) -> GenomeNet:
    """Build the network for ``genome`` (weights drawn from torch's global RNG; seed it first)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    info = describe_genome(genome, input_shape, num_classes, hidden, head, batchnorm)
    layers: list[nn.Module] = []
    for step in layer_plan(genome, info.input_shape, batchnorm):
        if step.skipped:
            continue
        if isinstance(step.layer, Conv):
            conv = nn.Conv2d(step.in_shape[0], step.layer.filters, 3, padding=1, bias=not batchnorm)
            norm = [nn.BatchNorm2d(step.layer.filters)] if batchnorm else []
            layers += [conv, *norm, nn.ReLU(inplace=True)]
        else:
            layers.append(nn.MaxPool2d(2, 2))
    model = GenomeNet(info, nn.Sequential(*layers))
    _init_weights(model, init)
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters of a built module."""
    return sum(p.numel() for p in model.parameters())
