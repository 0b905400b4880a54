"""Real image sizes through the command line: the seed's 3×32×32 CIFAR files and a 128×128 folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from alife_nas.cli import main
from tests.test_data import write_cifar10

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def status_json(run_dir):
    result = invoke("status", run_dir, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def write_folder(root, size, per_class=4):
    """Two classes of RGB PNGs at size×size (a bright and a dark pattern, so they can be learned)."""
    rng = np.random.default_rng(0)
    for label, level in (("bright", 200), ("dark", 40)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(level + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


# about 15 s: real paper-preset trainings of networks with up to 268M parameters
@pytest.mark.slow
def test_the_seeds_protocol_on_cifar_files_refuses_no_initial_cell(tmp_path):
    write_cifar10(tmp_path / "data")
    # seed 1 draws 224, 512, 64-M and 64: the first three were over the old 25M-parameter cap here
    result = invoke("evolve", "--out", tmp_path / "run", "--dataset", "cifar10", "--data-dir", tmp_path / "data",
                    "--no-download", "--preset", "paper", "--max-epochs", "1", "--lattice", "2", "--steps", "0",
                    "--seed", "1", "--device", "cpu", "--progress", "lines")
    assert result.exit_code == 0, result.output
    assert "initial population: 0 of 4 genomes (0%) exceed the size caps on 3×32×32 input" in result.output
    info = status_json(tmp_path / "run")
    assert info["failures"] == 0 and info["failures_by_kind"] == {} and info["trainings"] == 4
    assert sorted(cell["genome"] for row in info["lattice"] for cell in row) == ["224", "512", "64", "64-M"]
    assert (info["preset"], info["head"], info["batchnorm"]) == ("paper", "flatten", False)


def test_a_large_folder_with_the_seeds_head_is_refused_at_creation_and_runs_with_gap(tmp_path):
    folder = write_folder(tmp_path / "photos", 128)
    common = ["--dataset", f"imagefolder:{folder}", "--val-size", "2", "--max-epochs", "1", "--lattice", "2",
              "--steps", "0", "--seed", "1", "--device", "cpu", "--progress", "lines"]
    refused = invoke("evolve", "--out", tmp_path / "flat", *common)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    message = refused.output.strip()
    assert "\n" not in message and "initial population: 2 of 4 genomes (50%) exceed the size caps on 3×128×128" in message
    assert "(max_memory)" in message and "--head gap" in message and "--force" in message
    assert not (tmp_path / "flat").exists()

    result = invoke("evolve", "--out", tmp_path / "gap", *common, "--head", "gap", "--batchnorm")
    assert result.exit_code == 0, result.output
    assert "initial population: 0 of 4 genomes (0%) exceed" in result.output
    info = status_json(tmp_path / "gap")
    assert info["failures"] == 0 and info["trainings"] == 4 and (info["head"], info["batchnorm"]) == ("gap", True)
    text = invoke("status", tmp_path / "gap").output
    assert "head gap, batchnorm on" in text.splitlines()[0]


def test_forced_refusals_say_why_in_the_log_line_and_status(tmp_path):
    folder = write_folder(tmp_path / "photos", 128)
    result = invoke("evolve", "--out", tmp_path / "forced", "--dataset", f"imagefolder:{folder}", "--val-size", "2",
                    "--max-epochs", "1", "--lattice", "2", "--steps", "0", "--seed", "1", "--device", "cpu",
                    "--filters", "16,512", "--max-params", "40000000", "--force", "--progress", "lines")
    assert result.exit_code == 0, result.output
    assert "-> failed: too_large (network has" in result.output and "(max_params))" in result.output
    info = status_json(tmp_path / "forced")
    kinds = info["failures_by_kind"]
    assert set(kinds) == {"too_large"} and kinds["too_large"]["count"] == info["failures"] > 0
    assert "max_params" in kinds["too_large"]["example"]
    text = invoke("status", tmp_path / "forced").output
    assert f"failures {info['failures']}: too_large {info['failures']} (e.g. " in text
