import subprocess
import sys

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.run import Run, RunConfig
from alife_nas.data import load_dataset
from alife_nas.genome import parse_genome
from alife_nas.training import Trainer, TrainSettings, make_settings
from tests.conftest import fake_score


def make_runs(tmp_path):
    dirs = []
    for strategy in ("neuralfinder", "random"):
        for seed in (0, 1):
            path = tmp_path / f"{strategy}-{seed}"
            run = Run.create(str(path), RunConfig(strategy=strategy, lattice=3, steps=None, budget=15, seed=seed), fake_score)
            run.advance()
            run.store.close()
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
    # Searched with the fake score (fast), but re-trained for real on digits with the runs' own settings.
    settings = make_settings("fast", max_epochs=4).to_dict()
    dirs = []
    for strategy in ("neuralfinder", "random"):
        path = tmp_path / strategy
        config = RunConfig(strategy=strategy, lattice=2, steps=None, budget=6, seed=0, filters=[16, 32],
                           random_max_layers=3, settings=settings)
        run = Run.create(str(path), config, fake_score)
        run.advance()
        run.store.close()
        dirs.append(str(path))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(out), "--retrain", "--retrain-seeds", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in (out / "comparison.txt").read_text().splitlines()]
    run_rows = {row[0]: row for row in rows if row and row[0] in ("neuralfinder", "random") and row[2] == "0"}
    assert set(run_rows) == {"neuralfinder", "random"}
    # The reported number is the mean of seed-0 and seed-1 re-trainings of the run's best genome with the run's settings.
    data = load_dataset("digits", val_size=0.2)
    trainer = Trainer(data, TrainSettings.from_dict(settings), "cpu")
    for row in run_rows.values():
        accuracies = [trainer.train(parse_genome(row[7]), seed=seed, evaluate_test=True).test_accuracy for seed in (0, 1)]
        assert all(0.0 < a <= 1.0 for a in accuracies)
        assert float(row[6]) == pytest.approx((accuracies[0] + accuracies[1]) / 2, abs=5e-5)
