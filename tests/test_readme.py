"""The README's walkthrough to a trained model runs as written and predicts in a fresh interpreter."""
from __future__ import annotations

import pytest
import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.data import load_dataset
from tests.conftest import run_search

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough() -> list[str]:
    """The commands of the README's bash block about trained models, comments and the pip line left out."""
    text = README.read_text()
    block = re.search(r"Take the best networks away.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = re.split(r"\s{2,}#", line)[0].strip()
        if line and not line.startswith("#") and not line.startswith("pip "):
            commands.append(line)
    return commands


@pytest.mark.slow
def test_the_readme_walkthrough_ends_in_a_prediction_without_alife_nas(tmp_path, monkeypatch):
    commands = walkthrough()
    assert [c.split()[0] for c in commands] == ["alife-nas", "alife-nas", "python", "python"]
    # the run of the README's first command, made small: a cheap fitness, 1-epoch trainings
    run_search(tmp_path / "runs" / "first", data=load_dataset("digits"), lattice=2, steps=1, seed=0,
               dataset="digits", filters=[8, 16], max_epochs=1)
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for command in commands[:2]:
            result = CliRunner().invoke(main, shlex.split(command)[1:])
            assert result.exit_code == 0, (command, result.output)
    finally:
        torch.set_num_threads(before)
    assert {"rank_1.py", "rank_1.pt"} <= {p.name for p in (tmp_path / "models").iterdir()}
    assert sorted(p.name for p in (tmp_path / "models" / "mine").iterdir()) == ["model.pt", "model.py"]
    outputs = []
    for command in commands[2:]:
        args = shlex.split(command)
        proc = subprocess.run([sys.executable, *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, (command, proc.stderr)
        outputs.append(proc.stdout.strip())
    assert "-I" in commands[3]  # isolated: the model file runs without alife_nas on the path
    predicted = ast.literal_eval(outputs[-1])
    assert len(predicted) == 5 and set(predicted) <= {str(i) for i in range(10)}


def first_command() -> list[str]:
    """The alife-nas part of the README's first command (its install line ends in it)."""
    text = README.read_text()
    block = re.search(r"## Set up and run.*?```bash\n(.*?)```", text, re.S).group(1)
    line = block.strip().splitlines()[0]
    return shlex.split(line.split("&& alife-nas ")[-1])


def test_the_readme_first_command_is_the_small_measured_run():
    # the README quotes a measured time for exactly these settings; a changed command needs a new measurement
    args = first_command()
    assert args[0] == "evolve"
    context = main.commands["evolve"].make_context("evolve", args[1:])
    assert context.params["out"] == "runs/first"
    assert context.params["filters"] == "16,32,64,128"
    assert context.params["steps"] == 10
