import subprocess
import sys

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.data import load_data
from alife_nas.genome import parse_genome
from alife_nas.store import RunStore
from alife_nas.training import Trainer
from tests.conftest import run_search

#: Each strategy's own options (a lattice is a neuralfinder option only).
OWN = {"neuralfinder": {"lattice": 3}, "random": {}}


def make_runs(tmp_path):
    dirs = []
    for strategy in ("neuralfinder", "random"):
        for seed in (0, 1):
            path = tmp_path / f"{strategy}-{seed}"
            run_search(path, strategy=strategy, budget=15, seed=seed, **OWN[strategy])
            dirs.append(str(path))
    return dirs


def test_compare_writes_png_and_table(tmp_path):
    dirs = make_runs(tmp_path)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(out), "--budget", "15"])
    assert result.exit_code == 0, result.output
    table = (out / "comparison.txt").read_text()
    assert "neuralfinder" in table and "random" in table and "median" in table
    assert (out / "comparison.png").stat().st_size > 10_000
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_a_non_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "alife_nas", "compare", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "not an alife_nas run directory" in proc.stderr


def test_compare_retrain_adds_test_accuracy_with_the_real_trainer(tmp_path):
    # Searched with the fake score (fast), but re-trained for real on digits with the runs' own config.
    own = {"neuralfinder": {"lattice": 2}, "random": {"random_max_layers": 3}}
    dirs = []
    for strategy in ("neuralfinder", "random"):
        path = tmp_path / strategy
        run_search(path, strategy=strategy, budget=6, seed=0, filters=[16, 32], preset="fast", max_epochs=4,
                   **own[strategy])
        dirs.append(str(path))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(out), "--retrain", "--retrain-seeds", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in (out / "comparison.txt").read_text().splitlines()]
    run_rows = {row[0]: row for row in rows if row and row[0] in ("neuralfinder", "random") and row[2] == "0"}
    assert set(run_rows) == {"neuralfinder", "random"}
    # The reported number is the mean of seed-0 and seed-1 re-trainings of the run's best genome, with the
    # run's own data split and training settings (the retraining policy: test accuracy at the best val epoch).
    for name, row in run_rows.items():
        with RunStore.open(tmp_path / name) as store:
            config = store.config
            assert row[7] == store.best_evaluation().genome
        assert config.training.preset == "fast" and config.training.max_epochs == 4
        trainer = Trainer(load_data(config.data), config.training, "cpu")
        accuracies = [trainer.train(parse_genome(row[7]), seed=seed, evaluate_test=True).test_accuracy for seed in (0, 1)]
        assert all(0.0 < a <= 1.0 for a in accuracies)
        assert float(row[6]) == pytest.approx((accuracies[0] + accuracies[1]) / 2, abs=5e-5)
