"""`alife-nas train GENOME`: JSON output, human output, one-line exit-2 errors."""
import json

import pytest
import torch
from click.testing import CliRunner

from alife_nas.cli import main

KEYS = {"genome", "params", "flops", "val_accuracy", "test_accuracy", "epochs", "fitness", "best_epoch",
        "train_time", "images_per_sec", "effective_layers", "failure", "failure_kind", "at_chance"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny trainings on a shared 2-core box: one intra-op thread avoids OpenMP barrier stalls
    # when other processes hold a core. The package itself never changes the thread count.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
