"""alife_nas.workflows: export, compare and train called from Python, what they return and write.

Runs are searched with the cheap fake fitness; the re-trainings and trainings here are real (digits,
1 epoch, 8- and 16-filter networks).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.export import read_json, top_architectures
from alife_nas.store import RunStore, RunStoreError
from alife_nas.workflows import (
    ComparisonReport,
    ExportResult,
    TrainOutcome,
    WorkflowError,
    compare_runs,
    export_run,
    train_genome,
)
from tests.conftest import run_search, tree_state

TINY = {"dataset": "digits", "filters": [8, 16], "max_epochs": 1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits) -> Path:
    """A small finished run on digits (fake fitness) that records the data set's shape and classes."""
    return run_search(tmp_path_factory.mktemp("runs") / "run", data=digits, lattice=3, steps=2, seed=2, **TINY)


def kept(run: Path) -> dict:
    """A run's files and bytes, SQLite's side files aside (any reader makes them)."""
    return {k: v for k, v in tree_state(run).items() if not k.endswith(("-wal", "-shm"))}


def events():
    got = []
    return got, got.append


def test_importing_the_workflows_loads_no_torch_nor_matplotlib():
    code = "import sys, alife_nas.workflows; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- export ---------------------------------------------------------------------------------------
def test_export_returns_the_text_when_there_is_no_out(run_dir):
    got, report = events()
    done = export_run(run_dir, top=3, fmt="json", on_progress=report)
    assert isinstance(done, ExportResult) and done.out is None and done.files == [] and not done.trained
    with RunStore.open(run_dir) as store:
        expected = top_architectures(store.evaluations(), k=3, fitness=store.genome_fitness())
    assert [r["genome"] for r in done.rows] == [r["genome"] for r in expected]
    assert [str(g) for _, _, g in read_json(done.text)] == [r["genome"] for r in expected]
    assert got == []  # nothing to report, and nothing printed


def test_export_writes_a_file_and_refuses_it_again_without_force(run_dir, tmp_path, capsys):
    out = tmp_path / "top.md"
    done = export_run(run_dir, top=2, out=out)
    assert done.text is None and done.out == out and done.files == [out.resolve()]
    assert out.read_text().startswith("| Rank") and len(done.rows) == 2
    with pytest.raises(WorkflowError, match="top.md already exists; add --force"):
        export_run(run_dir, out=out)
    assert export_run(run_dir, top=1, out=out, force=True).files == [out.resolve()]
    assert capsys.readouterr() == ("", "")  # the library never prints


def test_export_pytorch_goes_to_the_runs_default_folder_untrained(tmp_path, digits):
    run = run_search(tmp_path / "run", data=digits, lattice=3, steps=1, **TINY)
    done = export_run(run, top=2, fmt="pytorch")
    assert done.out == run / "export-pytorch" and not done.trained
    assert [p.name for p in done.files] == ["rank_1.py", "rank_2.py"] and all(p.is_file() for p in done.files)


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"fmt": "csv"}, WorkflowError, "unknown export format 'csv'"),
    ({"top": 0}, WorkflowError, "top must be"),
    ({"retrain": True, "retrain_seeds": 0}, WorkflowError, "retrain_seeds must be"),
    ({"fmt": "json", "out": "{run}/run.sqlite", "force": True}, WorkflowError, "run's own run.sqlite"),
    ({"fmt": "pytorch", "out": ""}, WorkflowError, "--out '' is an empty path"),
])
def test_export_refusals_are_one_line_errors_before_any_work(run_dir, kwargs, error, needle):
    kwargs = {k: v.format(run=run_dir) if isinstance(v, str) else v for k, v in kwargs.items()}
    before = kept(run_dir)
    with pytest.raises(error, match=needle) as caught:
        export_run(run_dir, device="cpu", **kwargs)
    assert "\n" not in str(caught.value)
    assert kept(run_dir) == before


def test_export_of_no_run_is_a_run_store_error(tmp_path):
    with pytest.raises(RunStoreError, match="not an alife_nas run directory"):
        export_run(tmp_path)


def test_export_retrain_writes_trained_files_and_reports_each(run_dir, tmp_path, one_torch_thread):
    got, report = events()
    done = export_run(run_dir, top=1, fmt="pytorch", out=tmp_path / "nets", retrain=True, device="cpu",
                      on_progress=report)
    assert done.trained and [p.name for p in done.files] == ["rank_1.py", "rank_1.pt"]
    row = done.rows[0]
    assert row["retrain_seeds"] == [0] and 0.0 < row["test_accuracy"] <= 1.0 and row["retrain_epochs"] == [1]
    assert [e.kind for e in got] == ["retraining", "retrained"]
    assert got[0].text == "re-training 1 architectures on digits (cpu, seeds 0..0)"
    assert got[1].data == row and got[1].text.startswith(f"   1. {row['genome']}: test accuracy ")


# --- compare --------------------------------------------------------------------------------------
def two_runs(tmp_path, **options) -> list[Path]:
    return [run_search(tmp_path / name, strategy="random", budget=6, seed=seed, **options)
            for seed, name in enumerate(("a", "b"))]


def test_compare_without_out_writes_nothing_and_returns_the_report(tmp_path):
    runs = two_runs(tmp_path)
    before = {run: kept(run) for run in runs}
    report = compare_runs(runs)
    assert isinstance(report, ComparisonReport) and report.files == [] and report.differences == []
    assert report.budget == 6 and not report.budget_given and [c.name for c in report.curves] == ["a", "b"]
    assert report.table.splitlines()[0].startswith("run ") and "random" in report.table
    assert all(c.test_accuracy is None for c in report.curves)
    assert len(report.figure().axes) == 1  # below 20 trainings: one panel
    assert compare_runs(runs, budget=4).budget == 4
    assert {run: kept(run) for run in runs} == before


def test_compare_writes_the_table_and_the_picture(tmp_path):
    runs = two_runs(tmp_path)
    report = compare_runs([str(r) for r in runs], budget=5, out=tmp_path / "report")
    assert report.budget_given and report.files == [tmp_path / "report" / "comparison.txt",
                                                     tmp_path / "report" / "comparison.png"]
    assert report.files[0].read_text() == report.table + "\n"
    assert report.files[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_different_settings_unless_forced(tmp_path):
    a = run_search(tmp_path / "a", strategy="random", budget=5, seed=0)
    b = run_search(tmp_path / "b", strategy="random", budget=5, seed=1, max_epochs=7)
    with pytest.raises(WorkflowError, match=f"{a} and {b} differ in data or training settings: "
                                            f"max_epochs: 12 -> 7; .* or give --force"):
        compare_runs([a, b], out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    got, report = events()
    forced = compare_runs([a, b], force=True, on_progress=report)
    assert forced.differences == [(b, ["max_epochs: 12 -> 7"])]
    assert [(e.kind, e.text) for e in got] == [("warning", f"warning: {b} differs from {a}: max_epochs: 12 -> 7")]


def test_compare_refusals(tmp_path):
    runs = two_runs(tmp_path)
    with pytest.raises(WorkflowError, match=r"--budget 7 is more than run \w used \(6 trainings\); give at most 6"):
        compare_runs(runs, budget=7)
    with pytest.raises(WorkflowError, match="no runs to compare"):
        compare_runs([])
    with pytest.raises(RunStoreError, match="not an alife_nas run directory"):
        compare_runs([runs[0], tmp_path])
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkflowError, match="cannot write .*file/report: Not a directory"):
        compare_runs(runs, out=tmp_path / "file" / "report")


def test_compare_retrain_sets_each_runs_test_accuracy(tmp_path, one_torch_thread):
    runs = two_runs(tmp_path, random_max_layers=2, **TINY)
    got, report = events()
    done = compare_runs(runs, retrain=True, device="cpu", on_progress=report)
    assert all(0.0 < c.test_accuracy <= 1.0 for c in done.curves)
    assert [e.kind for e in got] == ["retraining", "retraining"] and [e.data for e in got] == done.curves
    assert got[0].text == f"re-training a's best {done.curves[0].best_genome} (seeds 0..0)"
    assert f"{done.curves[0].test_accuracy:.4f}" in done.table


# --- train ----------------------------------------------------------------------------------------
def test_train_genome_trains_saves_and_reports(tmp_path, digits, one_torch_thread):
    got, report = events()
    epochs = []
    outcome = train_genome("8-M", SearchConfig.from_options(max_epochs=1, device="cpu"), seed=1,
                           save=tmp_path / "m", data=digits, on_progress=report,
                           on_epoch=lambda *args: epochs.append(args))
    assert isinstance(outcome, TrainOutcome) and not outcome.failed
    assert outcome.result.genome == "8-M" and outcome.result.seed == 1 and 0 < outcome.result.test_accuracy <= 1
    assert (outcome.dataset, outcome.input_shape, outcome.num_classes) == ("digits", (1, 8, 8), 10)
    assert outcome.preset == "fast" and outcome.device == "cpu"
    assert outcome.saved == [tmp_path / "m" / "model.py", tmp_path / "m" / "model.pt"]
    assert all(p.is_file() for p in outcome.saved)
    assert [e.kind for e in got] == ["training"] and got[0].data["max_epochs"] == 1
    assert got[0].text.startswith("training 8-M on digits (") and got[0].text.endswith("the fast preset on cpu")
    assert len(epochs) == 1 and epochs[0][:2] == (1, 1)
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data["saved"] == [str(p) for p in outcome.saved] and data["dataset"] == "digits"
    assert data["test_accuracy"] == outcome.result.test_accuracy and "weights" not in data
    with pytest.raises(WorkflowError, match="model.py already exists; add --force"):
        train_genome("8-M", {"max_epochs": 1}, save=tmp_path / "m", data=digits)


def test_train_genome_that_fails_saves_nothing(tmp_path, digits):
    outcome = train_genome("16-M", {"max_params": 100}, save=tmp_path / "m", data=digits)
    assert outcome.failed and outcome.result.failure_kind == "too_large"
    assert outcome.saved == [] and outcome.to_dict()["saved"] == [] and not (tmp_path / "m").exists()


@pytest.mark.parametrize("genome, config, kwargs, error, needle", [
    ("8-X", None, {}, ValueError, "X"),  # GenomeParseError
    ("8-M", None, {"onnx": True}, WorkflowError, "--onnx only applies with --save"),
    ("8-M", None, {"force": True}, WorkflowError, "--force only applies with --save"),
    ("8-M", None, {"save": ""}, WorkflowError, "--save '' is an empty path"),
    ("8-M", {"max_epochs": 0}, {}, ConfigError, "max_epochs"),
    ("8-M", {"device": "tpu"}, {}, ConfigError, "device must be"),
])
def test_train_genome_refusals_come_before_training(genome, config, kwargs, error, needle):
    called = []
    with pytest.raises(error, match=needle):
        train_genome(genome, config, on_progress=called.append, **kwargs)
    assert called == []  # refused before the data set was loaded
