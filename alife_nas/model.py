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

from typing import Sequence

import torch
from torch import nn

from alife_nas.genome import Conv, Genome
from alife_nas.shapes import INITS, ModelInfo, check_caps, describe_genome, layer_plan

__all__ = ["ModelInfo", "GenomeNet", "describe_genome", "build_model", "conv_modules", "inherit_weights", "check_caps",
           "count_params", "INITS"]


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


def conv_modules(genome: Genome, input_shape: tuple[int, int, int], batchnorm: bool = False) -> dict[int, list[int]]:
    """Genome layer index -> indices in ``features`` of the modules holding its weights (the
    conv, and its batch norm): the layout :func:`build_model` builds (skipped pools take none)."""
    out: dict[int, list[int]] = {}
    index = 0
    for number, step in enumerate(layer_plan(genome, input_shape, batchnorm)):
        if step.skipped:
            continue
        if isinstance(step.layer, Conv):
            out[number] = [index, index + 1] if batchnorm else [index]
            index += 3 if batchnorm else 2
        else:
            index += 1
    return out


@torch.no_grad()
def inherit_weights(model: GenomeNet, genome: Genome, sources: Sequence[tuple[dict, Genome, Sequence[tuple[int, int]],
                                                                          bool]]) -> int:
    """Copy trained weights into a freshly initialised ``model`` of ``genome``; returns the layers copied.

    ``sources``: per parent, (its state_dict, its genome, (child layer, parent layer) pairs, offer
    its head?). A layer (a conv with its bias and batch norm; the hidden or the classifier
    Linear) is copied only when every one of its tensors has the parent's shape; the rest keeps
    its fresh initialisation (docs/method.md, "Weight inheritance").
    """
    info = model.info
    ours = conv_modules(genome, info.input_shape, info.batchnorm)
    state = model.state_dict()
    copied = 0

    def take(mine: list[str], theirs: list[str], parent: dict) -> int:
        tensors = [(m, t) for m, t in zip(mine, theirs) if m in state]
        if not tensors or any(t not in parent or parent[t].shape != state[m].shape for m, t in tensors):
            return 0
        for m, t in tensors:
            state[m].copy_(parent[t])
        return 1

    for parent_state, parent_genome, pairs, head in sources:
        theirs = conv_modules(parent_genome, info.input_shape, info.batchnorm)
        for child_layer, parent_layer in pairs:
            if child_layer not in ours or parent_layer not in theirs:
                continue  # a pool, or a layer not built on this input
            names = [[f"features.{i}.{n}" for n in _TENSORS] for i in ours[child_layer]]
            other = [[f"features.{i}.{n}" for n in _TENSORS] for i in theirs[parent_layer]]
            if len(names) == len(other):
                copied += take([a for group in names for a in group], [b for group in other for b in group],
                               parent_state)
        if head:
            for linear in ("hidden", "classifier"):
                copied += take([f"{linear}.weight", f"{linear}.bias"], [f"{linear}.weight", f"{linear}.bias"],
                               parent_state)
    return copied


#: A conv's or a batch norm's tensors (those a module lacks are left out).
_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def count_params(model: nn.Module) -> int:
    """Number of parameters of a built module."""
    return sum(p.numel() for p in model.parameters())
