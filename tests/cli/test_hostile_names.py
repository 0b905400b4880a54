"""Generated files are data, not text: hostile data set and class names never become code.

An image folder's data set name is its path as typed, and class names are its sub-folder names;
both end up in the standalone model file (its docstring, CLASSES, METADATA) and in the ONNX
metadata. Each name here would run code, or break the file, if it were pasted into the source:
the test builds real image folders with such names, trains through ``train --save`` and through
``evolve`` + ``export --retrain`` (PyTorch and ONNX), imports the files in a fresh interpreter
and checks that nothing ran and that the names come back exactly.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from alife_nas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores

# Each payload creates the file PWNED in the working directory if it is ever executed.
FOLDER_NAMES = [
    'x""";open("PWNED","w");"""',
    "y''';open('PWNED','w');'''",
    'back\\slash \\" \\N{x} {0} {{}} é中\n""";open("PWNED","w")#\r\u2028z',
]
CLASS_NAMES = ['a""";open("PWNED","w");"""', "b'''\\{x}\n\u00e9"]

# Imports a generated model file by path, in an isolated interpreter; prints what it holds.
_IMPORT = (
    "import importlib.util, json, sys\n"
    "spec = importlib.util.spec_from_file_location('shipped', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
    "print(json.dumps({'classes': m.CLASSES, 'dataset': m.METADATA['dataset'], 'doc': m.__doc__,\n"
    "                  'predicted': m.predict(__import__('numpy').zeros((2, 3, 8, 8), 'uint8'))}))\n"
)


def image_folder(root: Path, name: str) -> Path:
    """A real image folder named ``name``: two classes with hostile names, 8 x 8 RGB PNGs."""
    folder = root / name
    rng = np.random.default_rng(0)
    for c, cls in enumerate(CLASS_NAMES):
        (folder / cls).mkdir(parents=True)
        for i in range(8):
            pixels = (rng.random((8, 8, 3)) * 60 + 150 * c).astype(np.uint8)
            Image.fromarray(pixels).save(folder / cls / f"{i}.png")
    return folder


def imported(model_py: Path, workdir: Path) -> dict:
    """Import ``model_py`` in a fresh interpreter (cwd ``workdir``); it must not have run anything."""
    source = model_py.read_text(encoding="utf-8")
    ast.parse(source)  # a valid file, backslashes and all
    proc = subprocess.run([sys.executable, "-I", "-c", _IMPORT, str(model_py)], cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (workdir / "PWNED").exists() and not (model_py.parent / "PWNED").exists()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def invoke(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


# each case trains and loads a model in a fresh interpreter (~2.5 s): one in the quick subset
@pytest.mark.parametrize("name", [FOLDER_NAMES[0], *(pytest.param(n, marks=pytest.mark.slow) for n in FOLDER_NAMES[1:])],
                         ids=["triple-double", "triple-single", "escapes-and-unicode"])
def test_train_save_writes_names_as_literals(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)  # a payload that ran would leave PWNED here
    folder = image_folder(tmp_path, name)
    invoke("train", "8-M", "--dataset", f"imagefolder:{folder}", "--max-epochs", "1", "--device", "cpu",
           "--save", tmp_path / "saved")
    got = imported(tmp_path / "saved" / "model.py", tmp_path)
    assert got["dataset"] == f"imagefolder:{folder}" and got["classes"] == sorted(CLASS_NAMES)
    assert f"imagefolder:{folder}" in got["doc"]  # the docstring shows the name as it is
    assert set(got["predicted"]) <= set(CLASS_NAMES)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.slow
def test_export_retrain_of_a_run_writes_names_as_literals(tmp_path, monkeypatch):
    """The name comes from the run's stored config: a run handed over with its folder carries it."""
    import onnx

    monkeypatch.chdir(tmp_path)
    folder = image_folder(tmp_path, FOLDER_NAMES[0] + FOLDER_NAMES[2])
    run = tmp_path / "run"
    invoke("evolve", "--out", run, "--dataset", f"imagefolder:{folder}", "--lattice", "2", "--steps", "1",
           "--filters", "4,8", "--max-epochs", "1", "--device", "cpu", "--progress", "lines")
    invoke("export", run, "--top", "1", "--format", "pytorch", "--retrain", "--device", "cpu", "--out", tmp_path / "py")
    got = imported(tmp_path / "py" / "rank_1.py", tmp_path)
    assert got["dataset"] == f"imagefolder:{folder}" and got["classes"] == sorted(CLASS_NAMES)
    invoke("export", run, "--top", "1", "--format", "pytorch", "--out", tmp_path / "arch")  # untrained files too
    ast.parse((tmp_path / "arch" / "rank_1.py").read_text(encoding="utf-8"))
    invoke("export", run, "--top", "1", "--format", "onnx", "--retrain", "--device", "cpu", "--out", tmp_path / "onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "onnx" / "rank_1.onnx")).metadata_props}
    assert props["dataset"] == f"imagefolder:{folder}"  # metadata strings are stored as they are
    assert json.loads(props["classes"]) == sorted(CLASS_NAMES)
    for fmt in ("json", "markdown", "paper"):  # the text exports stay well-formed
        invoke("export", run, "--top", "1", "--format", fmt, "--out", tmp_path / f"top.{fmt}")
    assert json.loads((tmp_path / "top.json").read_text())[0]["rank"] == 1
    assert not (tmp_path / "PWNED").exists()
