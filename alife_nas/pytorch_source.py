"""The standalone PyTorch source of a genome's network: one ``.py`` that needs only torch.

:func:`pytorch_source` writes the file: the network (layer names as alife_nas's builder, so its
state_dict loads), its initialisation and, with a :class:`ModelCard`, a trained model's ``load`` /
``predict`` with the input normalisation, class names and recipe embedded. User data reaches the
source only as literals (:func:`_literal`, :func:`_text_literal`), each read back to prove it.
:func:`pytorch_filename` and :func:`model_files` name the files of a model export. Nothing here
needs torch: the layers, parameters and FLOPs come from :mod:`alife_nas.shapes`.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import pprint
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from alife_nas.genome import Conv, Genome, parse_genome
from alife_nas.shapes import INITS, PlannedLayer, describe_genome, layer_plan

__all__ = ["pytorch_source", "pytorch_filename", "model_files", "ModelCard"]


def pytorch_filename(name: str) -> str:
    """A safe Python module file name for an architecture (``rank-1`` -> ``rank_1.py``)."""
    stem = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "model"
    if stem[0].isdigit():
        stem = "model_" + stem
    return stem + ".py"


def model_files(name: str, fmt: str, *, trained: bool = False) -> list[str]:
    """The files a model export writes for the network ``name``.

    'pytorch': ``NAME.py`` plus, when trained, the weights ``NAME.pt``; 'onnx': ``NAME.onnx``.
    """
    stem = pytorch_filename(name)[:-3]
    if fmt == "onnx":
        return [f"{stem}.onnx"]
    if fmt != "pytorch":
        raise ValueError(f"{fmt!r} is not a model export format; expected pytorch or onnx")
    return [f"{stem}.py"] + ([f"{stem}.pt"] if trained else [])


def _pytorch_layer_lines(step: PlannedLayer) -> list[str]:
    """The ``nn.Sequential`` lines of one planned layer, commented with the map shape it yields."""
    number, (c_in, h_in, w_in), (c, h, w) = step.number, step.in_shape, step.shape
    if step.skipped:
        return [f"            # layer {number} (M) skipped: the map is already {h_in} x {w_in}, a pool would empty it"]
    if isinstance(step.layer, Conv) and step.batchnorm:
        return [
            f"            nn.Conv2d({c_in}, {c}, kernel_size=3, stride=1, padding=1, bias=False),  # layer {number}: {c} x {h} x {w}",
            f"            nn.BatchNorm2d({c}),",
            "            nn.ReLU(inplace=True),",
        ]
    if isinstance(step.layer, Conv):
        return [
            f"            nn.Conv2d({c_in}, {c}, kernel_size=3, stride=1, padding=1),  # layer {number}: {c} x {h} x {w}",
            "            nn.ReLU(inplace=True),",
        ]
    return [f"            nn.MaxPool2d(kernel_size=2, stride=2),  # layer {number}: -> {c} x {h} x {w}"]


@dataclass(frozen=True)
class ModelCard:
    """What the standalone file of a TRAINED network embeds besides the architecture.

    ``mean`` and ``scale`` are per channel, in 0..255 units, as the trainer normalised:
    ``(image - mean) / scale`` (``scale`` is the training split's std for 'standardize', 255
    for 'center'). ``weights_file`` is the state_dict's file name, next to the .py.
    ``metadata`` is the recipe and what it measured (genome, data set, settings, accuracies,
    seed, ...): plain JSON-like values, written into the file as a Python literal.
    """

    classes: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights_file: str
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


_ARCHITECTURE_TEXT = """Each number in the genome is a 3x3 conv (stride 1, padding 1, {conv}) + ReLU, each M a 2x2
max-pool (stride 2); then {head} -> Linear({hidden}) + ReLU -> Dropout(0.5) -> Linear(classes).
The search trained it with an L2 penalty on the classifier's weight. Module names match
alife_nas's builder, so its state_dicts load here."""

_TRAINED_FUNCTIONS = '''

def load(path=None, map_location="cpu") -> Net:
    """The network with the trained weights (default: WEIGHTS next to this file), in eval mode.

    It takes normalised input: ``model(normalize(images))`` gives the logits.
    """
    path = Path(__file__).resolve().with_name(WEIGHTS) if path is None else Path(path)
    model = Net()
    model.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return model.eval()


def _batch(images) -> torch.Tensor:
    """Images as an N x C x H x W tensor (not yet normalised), whatever layout they came in."""
    x = torch.as_tensor(images)
    c, h, w = INPUT_SHAPE
    if x.dim() == 3 and c == 1 and tuple(x.shape[1:]) == (h, w):
        x = x.unsqueeze(1)  # N x H x W grey images
    elif x.dim() == 3:
        x = x.unsqueeze(0)  # one image
    if x.dim() == 4 and tuple(x.shape[1:]) == (c, h, w):
        return x
    if x.dim() == 4 and tuple(x.shape[1:]) == (h, w, c):
        return x.permute(0, 3, 1, 2)
    raise ValueError(f"expected images of shape N x {{c}} x {{h}} x {{w}} or N x {{h}} x {{w}} x {{c}}, got {{tuple(x.shape)}}")


def normalize(images) -> torch.Tensor:
    """Images in 0..255 (uint8, or float in the same units) -> the network's float32 input."""
    x = _batch(images).float()
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    scale = torch.tensor(SCALE, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / scale


_loaded = None


@torch.no_grad()
def logits(images, model=None, batch_size: int = 1024) -> torch.Tensor:
    """The network's output (N x NUM_CLASSES) for images in 0..255; ``model`` defaults to load()."""
    global _loaded
    if model is None:
        if _loaded is None:
            _loaded = load()
        model = _loaded
    model.eval()
    device = next(model.parameters()).device
    x = _batch(images)
    out = [model(normalize(x[i : i + batch_size]).to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, NUM_CLASSES)


def predict_proba(images, model=None) -> torch.Tensor:
    """Class probabilities, N x NUM_CLASSES (column i is CLASSES[i])."""
    return torch.softmax(logits(images, model), 1)


def predict(images, model=None) -> list:
    """The class name of each image (uint8 or float in 0..255; N x C x H x W or N x H x W x C)."""
    return [CLASSES[i] for i in logits(images, model).argmax(1).tolist()]


if __name__ == "__main__":
    net = load()
    count = sum(p.numel() for p in net.parameters())
    test = METADATA.get("test_accuracy")
    print(f"{{GENOME}}: {{count}} parameters, trained weights {{WEIGHTS}}, test accuracy "
          + ("-" if test is None else f"{{test:.4f}}"))
'''

_UNTRAINED_MAIN = '''

if __name__ == "__main__":
    net = build()
    count = sum(p.numel() for p in net.parameters())
    logits = net.eval()(torch.zeros(1, *INPUT_SHAPE))
    print(f"{{GENOME}}: {{count}} parameters, output shape {{tuple(logits.shape)}}")
'''


def _plain(value: Any) -> Any:
    """``value`` as plain data a literal can hold: dicts (str keys), lists, str, int, float, bool, None.

    Anything else (a Path, a numpy number, an object) becomes its ``str``, so no ``repr`` of an
    arbitrary object -- code, once it is in a source file -- can reach a generated file.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _literal(value: Any) -> str:
    """A Python literal for plain JSON-like data (non-finite floats become None).

    Data goes into generated source only through here or :func:`_text_literal`: written as a
    literal, never pasted. The literal is read back with ``ast.literal_eval`` to prove it.
    """
    plain = _plain(value)
    text = pprint.pformat(plain, sort_dicts=False, width=100)
    if ast.literal_eval(text) != plain:  # cannot happen for plain data; a guard, not a branch
        raise ValueError("a value for a generated file does not survive as a Python literal")
    return text


def _text_literal(text: str) -> str:
    """``text`` as a triple-quoted Python string literal that reads like the text itself.

    Used for the generated files' docstrings, which carry user data (data set names, which are
    paths as typed; notes): backslashes, double quotes and every unprintable character (control
    characters, line and paragraph separators, lone surrogates) are escaped, so nothing in the
    text can end the string or change what it means. Read back with ``ast.literal_eval`` to prove it.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])  # \r, \x00, \u2028, \ud800, ...
    literal = '"""' + "".join(out) + '"""'
    if ast.literal_eval(literal) != text:  # the escaping above is complete; this proves it per file
        raise ValueError("a docstring for a generated file does not survive as a Python literal")
    return literal


def pytorch_source(
    genome: Genome | str,
    input_shape: Sequence[int],
    num_classes: int,
    name: str = "model",
    *,
    hidden: int = 512,
    init: str = "glorot",
    head: str = "flatten",
    batchnorm: bool = False,
    fitness: float | None = None,
    note: str | None = None,
    card: ModelCard | None = None,
) -> str:
    """A standalone Python file (torch only, no alife_nas) defining the genome's network.

    Layer names match alife_nas's builder (``features``, ``hidden``, ``dropout``,
    ``classifier``), so a state_dict saved by alife_nas loads into it; layers, parameters and
    FLOPs come from ``alife_nas.shapes``, the arithmetic the builder follows too, so max-pools the
    builder skips (map already below 2 pixels) are skipped here as well. ``init`` picks the weight
    initialisation ``build()`` applies: 'glorot' (Keras' default), 'kaiming' or 'torch'; ``head``
    and ``batchnorm`` the network's head ('flatten' or 'gap') and batch normalisation, as trained.

    Without ``card`` the file is the architecture only (``build()`` gives untrained weights).
    With a :class:`ModelCard` it is a trained model's file: the weights file next to it,
    ``load(path=None)``, ``predict(images)`` (class names), ``predict_proba``, ``logits`` and
    ``normalize``, with the normalisation, class names and recipe embedded.
    """
    g = parse_genome(genome) if isinstance(genome, str) else genome
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected glorot, kaiming or torch")
    info = describe_genome(g, tuple(input_shape), num_classes, hidden, head, batchnorm)
    if card is not None and not (len(card.classes) == num_classes and len(card.mean) == len(card.scale) == info.input_shape[0]):
        raise ValueError(f"the model card ({len(card.classes)} classes, {len(card.mean)} channels) does not fit "
                         f"{num_classes} classes and input {info.input_shape}")
    features = "\n".join(line for step in layer_plan(g, info.input_shape, batchnorm)
                         for line in _pytorch_layer_lines(step))
    params, flops = info.params, info.flops
    channels, height, width = info.output_shape
    dense_inputs = f"{channels}" if head == "gap" else f"{channels} * {height} * {width}"
    in_c, in_h, in_w = info.input_shape
    module, filename = pytorch_filename(name)[:-3], pytorch_filename(name)
    found = f"Validation accuracy in the search: {fitness:.4f}.\n" if fitness is not None else ""
    extra = f"{note}\n" if note else ""
    architecture = _ARCHITECTURE_TEXT.format(
        hidden=hidden, conv="no bias) + BatchNorm2d" if batchnorm else "bias",
        head="the mean of each channel (global average pooling)" if head == "gap" else "flatten")
    if init == "glorot":
        init_body = (
            "    for module in model.modules():\n"
            "        if isinstance(module, (nn.Conv2d, nn.Linear)):\n"
            "            nn.init.xavier_uniform_(module.weight)\n"
            "            if module.bias is not None:\n"
            "                nn.init.zeros_(module.bias)\n"
        )
    elif init == "kaiming":
        init_body = (
            "    for module in model.modules():\n"
            "        if isinstance(module, (nn.Conv2d, nn.Linear)):\n"
            "            nn.init.kaiming_normal_(module.weight, nonlinearity=\"relu\")\n"
            "            if module.bias is not None:\n"
            "                nn.init.zeros_(module.bias)\n"
        )
    else:
        init_body = "    return None  # PyTorch's default initialisation, as constructed\n"
    size = (f"Input {in_c} x {in_h} x {in_w}, {num_classes} classes: {params:,} parameters,\n"
            f"{flops:,} FLOPs per image (2 per multiply-add).")
    if card is None:
        doc = f'''{name}: the CNN {g} found by alife-nas (NeuralFinder lattice evolution), UNTRAINED.

{found}{size}
{extra}
This file rebuilds the architecture only: build() gives freshly initialised weights. For a
trained network with load() and predict(), use `alife-nas export RUN --retrain --format pytorch`
or `alife-nas train GENOME --save DIR`.

Standalone: needs only PyTorch. {architecture}

    python {filename}      # prints the parameter count
    from {module} import build; model = build()
'''
        imports, constants, tail = "", "", _UNTRAINED_MAIN
    else:
        meta = card.metadata
        def number(key: str) -> float | None:
            value = meta.get(key)
            return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

        recipe = [f"{meta['preset']} preset" if meta.get("preset") else None,
                  f"seed {meta['seed']}" if meta.get("seed") is not None else None]
        measured = []
        if number("val_accuracy") is not None:
            epoch = f" (epoch {meta['best_epoch']} of {meta['epochs']})" if meta.get("best_epoch") else ""
            measured.append(f"validation accuracy {number('val_accuracy'):.4f}{epoch}")
        if number("test_accuracy") is not None:
            measured.append(f"test accuracy {number('test_accuracy'):.4f}")
        # One fact a line, never re-wrapped: the data set name is a path as typed, shown as it is.
        lines = [f"Data set: {meta['dataset']}" if meta.get("dataset") else None,
                 "Trained with " + ", ".join(r for r in recipe if r) + "; the weights of the best validation epoch."
                 if any(recipe) else "The weights of the best validation epoch.",
                 "Measured: " + ", ".join(measured) + "." if measured else None]
        trained = "\n".join(line for line in lines if line)
        doc = f'''{name}: the CNN {g} found by alife-nas (NeuralFinder lattice evolution), TRAINED.

{trained}
{found}{extra}{size}

The trained weights are the state_dict in {card.weights_file}, next to this file (it loads with
torch.load(path, weights_only=True)). Standalone: needs only PyTorch, not alife_nas.

    from {module} import load, predict
    predict(images)   # -> class names; images uint8 (or float) in 0..255, N x C x H x W or N x H x W x C
    model = load()    # the trained network, eval mode; it takes normalize(images)
    python {filename}  # loads the weights, prints a summary

predict(), predict_proba() and logits() normalise as the training did, per channel:
(image - MEAN) / SCALE in 0..255 units. METADATA holds the recipe and what it measured.

{architecture}
'''
        imports = "from pathlib import Path\n\n"
        constants = (
            f"CLASSES = {_literal(list(card.classes))}\n"
            f"MEAN = {tuple(float(v) for v in card.mean)!r}  # per channel, 0..255 units: the training split's mean\n"
            f"SCALE = {tuple(float(v) for v in card.scale)!r}  # per channel divisor: the training split's std, or 255\n"
            f"WEIGHTS = {card.weights_file!r}  # the trained state_dict, next to this file\n"
            f"METADATA = {_literal(dict(meta))}\n"
        )
        tail = _TRAINED_FUNCTIONS
    return f'''#!/usr/bin/env python3
{_text_literal(doc)}
{imports}import torch
from torch import nn

GENOME = {str(g)!r}
INPUT_SHAPE = ({in_c}, {in_h}, {in_w})  # channels, height, width
NUM_CLASSES = {num_classes}
HIDDEN = {hidden}
HEAD = {head!r}  # flatten: the whole last map feeds the dense layer; gap: each channel's mean does
BATCHNORM = {batchnorm!r}  # batch normalisation between every conv and its ReLU
PARAMS = {params}  # expected parameter count
{constants}

class Net(nn.Module):
    """The genome's layers, then the fixed head."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
{features}
        )
        self.hidden = nn.Linear({dense_inputs}, HIDDEN)
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(HIDDEN, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean((2, 3)) if HEAD == "gap" else torch.flatten(x, 1)
        x = self.dropout(torch.relu(self.hidden(x)))
        return self.classifier(x)


def init_weights(model: nn.Module) -> None:
    """The initialisation the search used: {init}."""
{init_body}

def build(num_classes: int = NUM_CLASSES) -> Net:
    """A freshly initialised network (seed torch first for repeatable weights)."""
    model = Net(num_classes)
    init_weights(model)
    return model
''' + tail.format()
