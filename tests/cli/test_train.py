"""`alife-nas train GENOME`: JSON output, human output, one-line exit-2 errors."""
import json

import pytest
import torch
from click.testing import CliRunner

from alife_nas.cli import main

KEYS = {"genome", "params", "flops", "val_accuracy", "test_accuracy", "epochs", "fitness", "best_epoch",
        "train_time", "images_per_sec", "effective_layers", "failure", "failure_kind", "at_chance"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores


def run(*args):
    return CliRunner().invoke(main, ["train", *args])


def test_json_output_has_the_keys():
    r = run("16-M", "--dataset", "digits", "--max-epochs", "2", "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # stdout holds exactly one JSON object, no progress
    assert KEYS <= set(data)
    assert data["genome"] == "16-M" and data["epochs"] == 2 and data["params"] == 136_874
    assert 0 <= data["val_accuracy"] <= 1 and 0 <= data["test_accuracy"] <= 1 and data["failure"] is None


def test_human_output_and_progress_on_stderr():
    r = run("[('conv', [('nb_filter', 16)]), ('maxp', [('pool_size', 2)])]", "--preset", "fast",
            "--max-epochs", "2", "--batch-size", "256", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert "validation accuracy:" in r.stdout and "test accuracy:" in r.stdout
    assert "parameters:" in r.stdout and "FLOPs" in r.stdout and "epochs:" in r.stdout and "16-M" in r.stdout
    assert "epoch 2/2" in r.stderr and "epoch 1/2" not in r.stdout


def test_config_file(tmp_path):
    cfg = tmp_path / "train.toml"
    cfg.write_text('preset = "fast"\nmax-epochs = 1\nseed = 5\n')
    r = run("M", "--config", str(cfg), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["epochs"] == 1 and data["seed"] == 5 and data["preset"] == "fast"


def test_failed_training_reported_exit_1():
    r = run("16-M", "--max-params", "100", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["failure_kind"] == "too_large" and data["fitness"] == 0.0


@pytest.mark.parametrize("args,needle", [
    (["16-X-M"], "malformed genome"),
    (["16-M", "--dataset", "imagenet"], "unknown data set"),
    (["16-M", "--dataset", "cifar10", "--data-dir", "{tmp}"], "cifar-10-batches-py"),
    (["16-M", "--device", "tpu"], "device must be"),
    (["16-M", "--val-size", "0"], "val_size"),
    (["16-M", "--dataset", "digits", "--image-size", "4"], "imagefolder"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, args, needle):
    r = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0]
    assert "Traceback" not in r.output and r.stdout == ""


def test_bad_option_value_exit_2():
    r = run("16-M", "--preset", "slow")
    assert r.exit_code == 2 and "Traceback" not in r.output


# --- --save: the trained network to ship ------------------------------------------------------------
def test_save_writes_weights_and_a_predict_file_that_works_without_alife_nas(tmp_path):
    from alife_nas.data import load_dataset
    from tests.test_model_export import predict_in_fresh_interpreter

    r = run("8-M", "--max-epochs", "2", "--device", "cpu", "--save", str(tmp_path / "model"), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["saved"] == [str(tmp_path / "model" / "model.py"), str(tmp_path / "model" / "model.pt")]
    state = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert state["classifier.weight"].shape == (10, 512)
    digits = load_dataset("digits")
    got = predict_in_fresh_interpreter(tmp_path / "model" / "model.py", digits.test_x.numpy(),
                                       digits.test_y.numpy(), tmp_path)
    assert not got["alife_nas_loaded"]
    assert got["accuracy"] == data["test_accuracy"] == got["metadata"]["test_accuracy"]
    assert got["metadata"]["seed"] == 0 and got["metadata"]["best_epoch"] == data["best_epoch"]


@pytest.mark.slow  # two trainings and an ONNX export: ~4 s
def test_save_refuses_existing_files_before_training_and_force_overwrites_with_onnx(tmp_path):
    first = run("8-M", "--max-epochs", "1", "--device", "cpu", "--save", str(tmp_path))
    assert first.exit_code == 0, first.output
    assert f"saved:               {tmp_path / 'model.py'}, {tmp_path / 'model.pt'}" in first.stdout
    weights = (tmp_path / "model.pt").read_bytes()
    again = run("8-M", "--max-epochs", "1", "--seed", "4", "--device", "cpu", "--save", str(tmp_path))
    assert again.exit_code == 2 and "model.py already exists; add --force" in again.stderr
    assert "training" not in again.stderr and (tmp_path / "model.pt").read_bytes() == weights
    forced = run("8-M", "--max-epochs", "1", "--seed", "4", "--device", "cpu", "--save", str(tmp_path), "--force",
                 "--onnx")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.pt", "model.py"]
    assert (tmp_path / "model.pt").read_bytes() != weights  # seed 4's weights now


@pytest.mark.parametrize("args,needle", [
    (["--onnx"], "--onnx only applies with --save"),
    (["--force"], "--force only applies with --save"),
    (["--save", ""], "empty path"),
    (["--save", "{tmp}/file.txt"], "is a file"),
])
def test_save_mistakes_are_one_line_before_training(tmp_path, args, needle):
    (tmp_path / "file.txt").write_text("")
    r = run("8-M", "--max-epochs", "1", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.output


def test_onnx_without_its_packages_is_one_line_before_training(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # an import of it now fails
    r = run("8-M", "--max-epochs", "1", "--save", str(tmp_path / "m"), "--onnx")
    assert r.exit_code == 2 and 'pip install "alife-nas[onnx]"' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()


def test_a_failed_training_saves_nothing(tmp_path):
    r = run("16-M", "--max-params", "100", "--save", str(tmp_path / "m"), "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["saved"] == [] and not (tmp_path / "m").exists()
