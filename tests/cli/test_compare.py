import errno
import subprocess
import sys

import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

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


@pytest.mark.slow
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


# --- apples and oranges -------------------------------------------------------------------------
def one_line_error(result, *phrases):
    """A refusal: exit 2, one line on stderr holding every phrase, nothing on stdout, no traceback."""
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.slow  # two real-data runs: ~5 s
def test_compare_refuses_runs_trained_on_other_data_and_force_goes_on(tmp_path):
    # Real trainings on digits (1 epoch, 8- and 16-filter networks): one run validates on 20 % of the
    # training images, the other on 30 %, so their fitness values are not the same measurement.
    tiny = {"strategy": "random", "filters": [8, 16], "random_max_layers": 2, "preset": "fast", "max_epochs": 1,
            "device": "cpu", "threads": 1}
    a = run_search(tmp_path / "a", None, budget=3, seed=0, **tiny)
    b = run_search(tmp_path / "b", None, budget=3, seed=1, val_size=0.3, max_epochs=2,
                   **{k: v for k, v in tiny.items() if k != "max_epochs"})
    with RunStore.open(b) as store:
        assert store.dataset_info["num_classes"] == 10 and all(e.failure is None for e in store.evaluations())
    out = tmp_path / "report"
    refused = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out)])
    one_line_error(refused, f"{a} and {b} differ in data or training settings: val_size: 0.2 -> 0.3 (and 1 more)",
                   "--force")
    assert not out.exists()

    forced = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert forced.stderr.splitlines() == [f"warning: {b} differs from {a}: val_size: 0.2 -> 0.3",
                                          f"warning: {b} differs from {a}: max_epochs: 1 -> 2"]
    assert (out / "comparison.png").stat().st_size > 10_000 and "random" in (out / "comparison.txt").read_text()


@pytest.mark.parametrize("options, difference", [
    ({"max_epochs": 7}, "max_epochs: 12 -> 7"),
    ({"dataset": "mnist"}, "dataset: 'digits' -> 'mnist'"),
    ({"split_seed": 3, "batch_size": 64}, "split_seed: 0 -> 3 (and 1 more)"),
])
def test_compare_refuses_other_training_settings_or_data_set(tmp_path, options, difference):
    a = run_search(tmp_path / "a", strategy="random", budget=5, seed=0)
    b = run_search(tmp_path / "b", strategy="neuralfinder", lattice=2, budget=5, seed=0)
    c = run_search(tmp_path / "c", strategy="random", budget=5, seed=1, **options)
    result = CliRunner().invoke(main, ["compare", str(a), str(b), str(c), "--out", str(tmp_path / "out")])
    one_line_error(result, f"{a} and {c} differ", difference)
    assert not (tmp_path / "out").exists()


# --- one budget for every run ---------------------------------------------------------------------
def test_compare_cuts_every_run_at_the_smallest_runs_trainings_by_default(tmp_path):
    nf = run_search(tmp_path / "nf", strategy="neuralfinder", lattice=3, budget=20, seed=0)
    rs = run_search(tmp_path / "rs", strategy="random", budget=12, seed=0)
    with RunStore.open(nf) as store:
        assert store.count_evaluations() >= 20  # more trainings than the random run: cut to 12
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["compare", str(nf), str(rs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "every run cut at 12 trainings (the smallest run)" in result.stdout
    strategies = [line.split() for line in (out / "comparison.txt").read_text().split("\n\n")[1].splitlines()[1:]]
    assert {row[0]: int(row[2]) for row in strategies} == {"neuralfinder": 12, "random": 12}

    result = CliRunner().invoke(main, ["compare", str(nf), str(rs), "--out", str(out), "--budget", "8"])
    assert result.exit_code == 0 and "every run cut at 8 trainings (--budget)" in result.stdout
    result = CliRunner().invoke(main, ["compare", str(nf), str(rs), "--out", str(out), "--budget", "13"])
    one_line_error(result, "--budget 13 is more than run rs used (12 trainings); give at most 12")


def test_compare_help_says_the_default_budget():
    text = " ".join(CliRunner().invoke(main, ["compare", "--help"]).output.split())
    assert "[default: the smallest spend among the runs]" in text and "--force" in text
    assert "--cost [trainings|epochs|flops]" in text


# --- a disk that refuses the report -----------------------------------------------------------------
def test_compare_on_a_full_disk_leaves_no_partial_picture(tmp_path, monkeypatch):
    dirs = [str(run_search(tmp_path / name, strategy="random", budget=5, seed=seed)) for seed, name in enumerate("ab")]
    real_savefig = Figure.savefig

    def full_disk(fig, fname, *args, **kwargs):  # the first bytes go out, then the disk is full
        real_savefig(fig, fname, *args, **kwargs)
        fname.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(out)])
    one_line_error(result, f"cannot write {out / 'comparison.png'}: No space left on device",
                   "free some disk space or write to another folder (--out)")
    assert sorted(p.name for p in out.iterdir()) == ["comparison.txt"]  # whole; no PNG, no temporary file


def test_compare_out_under_a_file_is_one_line(tmp_path):
    dirs = [str(run_search(tmp_path / name, strategy="random", budget=5, seed=seed)) for seed, name in enumerate("ab")]
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(tmp_path / "file" / "report")])
    one_line_error(result, f"cannot write {tmp_path / 'file' / 'report'}: Not a directory")


def test_compare_by_epochs_and_by_a_cost_the_runs_did_not_store(tmp_path):
    dirs = make_runs(tmp_path)  # a score function that reports 3 epochs a training, no FLOPs, and no data set
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(tmp_path / "o"), "--cost", "epochs"])
    assert result.exit_code == 0 and "every run cut at 45 epochs (the smallest run)" in result.stdout
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(tmp_path / "o"), "--cost", "flops"])
    one_line_error(result, "has no stored training FLOPs")
    result = CliRunner().invoke(main, ["compare", *dirs, "--out", str(tmp_path / "o"), "--budget", "2.5"])
    one_line_error(result, "--budget counts whole trainings, got 2.5")
