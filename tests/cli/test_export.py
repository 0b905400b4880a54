"""`alife-nas export`: trained models (pytorch, onnx), a safe --out, damaged run databases.

The run has a cheap fake fitness; every --retrain here is a real training on digits (1 epoch).
"""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.data import load_data
from alife_nas.store import RunStore
from alife_nas.training import Trainer
from tests.conftest import run_search, tree_state
from tests.test_model_export import load_module, predict_in_fresh_interpreter

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores


def make_run(path: Path, digits) -> Path:
    """A small finished run on digits (fake fitness); it records the data set's shape and classes."""
    return run_search(path, data=digits, lattice=3, steps=2, seed=2, dataset="digits", filters=[8, 16], max_epochs=1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run", digits)


def invoke(*args):
    return CliRunner().invoke(main, ["export", *[str(a) for a in args]])


def one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # no other exception


def files_and_trainings(run: Path) -> tuple[set[str], list]:
    """The run's files (SQLite's side files aside: any reader makes them) and its stored trainings."""
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if not p.name.endswith(("-wal", "-shm"))}
    with RunStore.open(run) as store:
        return files, store.evaluations()


def best_genome(run_dir: Path) -> str:
    from alife_nas.export import top_architectures

    with RunStore.open(run_dir) as store:
        return top_architectures(store.evaluations(), k=1)[0]["genome"]


# --- trained models -------------------------------------------------------------------------------
@pytest.mark.slow  # re-training and a fresh interpreter: ~4 s
def test_retrain_pytorch_writes_trained_weights_that_predict_without_alife_nas(run_dir, tmp_path, digits):
    out = tmp_path / "nets"
    result = invoke(run_dir, "--top", "1", "--format", "pytorch", "--retrain", "--retrain-seeds", "2",
                    "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 1 architecture as trained PyTorch files" in result.stdout and "re-training 1" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["rank_1.pt", "rank_1.py"]
    state = torch.load(out / "rank_1.pt", weights_only=True)
    assert "classifier.weight" in state
    got = predict_in_fresh_interpreter(out / "rank_1.py", digits.test_x.numpy(), digits.test_y.numpy(), tmp_path)
    meta = got["metadata"]
    assert not got["alife_nas_loaded"]
    assert got["accuracy"] == meta["test_accuracy"]  # the saved weights' own test accuracy, reproduced
    assert meta["genome"] == best_genome(run_dir) and meta["rank"] == 1 and meta["retrain_seeds"] == [0, 1]
    assert meta["test_accuracy"] == meta["test_accuracies"][meta["seed"]]  # the saved seed's number
    assert meta["test_accuracy_mean"] == pytest.approx(sum(meta["test_accuracies"]) / 2)
    assert meta["run"] == str(run_dir.resolve()) and meta["data_split"] == {"val_size": 0.2, "split_seed": 0}
    assert meta["settings"]["max_epochs"] == 1  # the run's own recipe
    # the seed saved is the one with the best validation accuracy (the first of equals)
    with RunStore.open(run_dir) as store:
        config = store.config
    trainer = Trainer(load_data(config.data), config.training, "cpu")
    vals = [trainer.train(meta["genome"], seed=s).val_accuracy for s in (0, 1)]
    assert meta["seed"] == vals.index(max(vals)) and meta["val_accuracy"] == max(vals)
    assert load_module(out / "rank_1.py").METADATA == meta


@pytest.mark.slow
def test_onnx_untrained_by_default_and_trained_with_retrain(run_dir, tmp_path):
    import onnx

    result = invoke(run_dir, "--top", "1", "--format", "onnx")
    assert result.exit_code == 0, result.output
    folder = run_dir / "export-onnx"  # the default folder
    assert sorted(p.name for p in folder.iterdir()) == ["rank_1.onnx"]
    assert "as untrained ONNX files" in result.stdout
    props = {p.key: p.value for p in onnx.load(str(folder / "rank_1.onnx")).metadata_props}
    assert props["trained"] == "false"
    result = invoke(run_dir, "--top", "1", "--format", "onnx", "--retrain", "--device", "cpu", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "o" / "rank_1.onnx")).metadata_props}
    assert props["trained"] == "true" and json.loads(props["classes"]) == [str(i) for i in range(10)]
    assert props["genome"] == best_genome(run_dir) and 0 < float(props["test_accuracy"]) <= 1


def test_onnx_without_its_packages_is_one_line_before_any_work(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # an import of it now fails
    result = invoke(run_dir, "--format", "onnx", "--retrain", "--out", tmp_path / "o")
    one_line_error(result, 'pip install "alife-nas[onnx]"')
    assert "re-training" not in result.output and not (tmp_path / "o").exists()


def test_an_existing_export_needs_force(run_dir, tmp_path):
    out = tmp_path / "nets"
    assert invoke(run_dir, "--top", "2", "--format", "pytorch", "--out", out).exit_code == 0
    before = tree_state(out)
    one_line_error(invoke(run_dir, "--top", "2", "--format", "pytorch", "--out", out), "rank_1.py already exists")
    assert tree_state(out) == before
    result = invoke(run_dir, "--top", "3", "--format", "pytorch", "--out", out, "--force")
    assert result.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["rank_1.py", "rank_2.py", "rank_3.py"]
    (tmp_path / "top.md").write_text("my notes")
    one_line_error(invoke(run_dir, "--out", tmp_path / "top.md"), "already exists; add --force")
    assert (tmp_path / "top.md").read_text() == "my notes"
    assert invoke(run_dir, "--out", tmp_path / "top.md", "--force").exit_code == 0
    assert (tmp_path / "top.md").read_text().startswith("| Rank")


# --- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--format", "markdown", "--out", "{run}/run.sqlite"], "run's own run.sqlite"),
    (["--format", "json", "--out", "{run}/run.sqlite", "--force"], "run's own run.sqlite"),
    (["--format", "json", "--out", "{run}/run.sqlite-wal", "--force"], "run's own run.sqlite-wal"),
    (["--format", "paper", "--out", "{run}/run.lock", "--force"], "run's own run.lock"),
    (["--format", "pytorch", "--out", "{run}"], "the run directory itself"),
    (["--format", "markdown", "--out", ""], "empty path"),
    (["--format", "pytorch", "--out", ""], "empty path"),
    (["--format", "pytorch", "--out", "{run}/escape", "--force"], "symbolic link out of the run directory"),
    (["--format", "json", "--out", "{run}/escape/top.json", "--force"], "symbolic link out of the run directory"),
    (["--format", "json", "--out", "{outside}"], "is a folder"),
])
def test_out_refusals_are_one_line_and_come_before_any_retraining(tmp_path, digits, args, needle):
    run = make_run(tmp_path / "run", digits)
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "escape").symlink_to(outside, target_is_directory=True)
    before = files_and_trainings(run)
    result = invoke(run, *[a.format(run=run, outside=outside) for a in args], "--retrain", "--device", "cpu")
    one_line_error(result, needle)
    assert "re-training" not in result.output  # refused before a single training
    assert files_and_trainings(run) == before and list(outside.iterdir()) == []


def test_a_link_inside_the_run_that_stays_inside_is_fine(tmp_path, digits):
    run = make_run(tmp_path / "run", digits)
    (run / "mine").mkdir()
    (run / "latest").symlink_to(run / "mine", target_is_directory=True)
    result = invoke(run, "--top", "1", "--format", "pytorch", "--out", run / "latest")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (run / "mine").iterdir()] == ["rank_1.py"]


def corrupt(run: Path, sql: str, *params) -> None:
    conn = sqlite3.connect(run / "run.sqlite")
    with conn:
        conn.execute(sql, params)
    conn.close()


def test_a_damaged_genome_is_one_line_naming_the_run(tmp_path, digits):
    run = make_run(tmp_path / "run", digits)
    corrupt(run, "UPDATE evaluations SET genome = 'garbage('")
    for fmt in ("markdown", "pytorch"):
        result = invoke(run, "--format", fmt)
        one_line_error(result, str(run))
        assert "genome that cannot be read" in result.output


def test_a_damaged_number_of_classes_is_one_line_naming_the_run(tmp_path, digits):
    run = make_run(tmp_path / "run", digits)
    with RunStore.open(run) as store:
        info = store.dataset_info
    corrupt(run, "UPDATE meta SET value = ? WHERE key = 'dataset_info'", json.dumps({**info, "num_classes": "x"}))
    for fmt in ("pytorch", "onnx"):
        result = invoke(run, "--format", fmt, "--retrain")
        one_line_error(result, str(run))
        assert "number of classes 'x'" in result.output and "re-training" not in result.output
    assert invoke(run, "--format", "json").exit_code == 0  # a text export does not need it
    corrupt(run, "UPDATE meta SET value = '{not json' WHERE key = 'dataset_info'")
    one_line_error(invoke(run, "--format", "pytorch"), str(run))


def test_export_ranks_by_the_mean_and_shows_how_many_trainings(tmp_path):
    run_dir = run_search(tmp_path / "run", lattice=3, steps=3, reevaluate=2)
    result = CliRunner().invoke(main, ["export", str(run_dir), "--format", "json", "--top", "30"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    rows = rows["architectures"] if isinstance(rows, dict) else rows
    assert any(r["samples"] == 2 for r in rows) and all(r["samples"] >= 1 for r in rows)
    fitness = [r["fitness"] for r in rows]
    assert fitness == sorted(fitness, reverse=True)  # ranked by the means


# --- the Pareto front -----------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["params", "flops"])
def test_pareto_lists_the_non_dominated_architectures_in_every_format(run_dir, tmp_path, size):
    from alife_nas.export import top_architectures

    with RunStore.open(run_dir) as store:
        everything = top_architectures(store.evaluations(), k=1000, fitness=store.genome_fitness())
    result = invoke(run_dir, "--pareto", size, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    rows = rows["architectures"] if isinstance(rows, dict) else rows
    assert rows
    if size == "params":  # ties in fitness go to fewer parameters: the run's best is always on this front
        assert rows[0]["genome"] == everything[0]["genome"]
    by_genome = {r["genome"]: r for r in everything}
    for row in rows:  # its rank in the run, and nothing of the run beats it on both
        assert row["rank"] == by_genome[row["genome"]]["rank"]
        assert not any(o[size] <= row[size] and o["fitness"] > row["fitness"] for o in everything)
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    dominated = [o for o in everything if o["genome"] not in {r["genome"] for r in rows}]
    assert all(any(r[size] <= o[size] and r["fitness"] >= o["fitness"] for r in rows) for o in dominated)
    markdown = invoke(run_dir, "--pareto", size)
    assert markdown.exit_code == 0 and markdown.output.startswith("### Pareto front: validation accuracy against")
    assert markdown.output.count("\n| ") == 1 + len(rows)  # the header and a line per architecture
    out = tmp_path / "nets"
    written = invoke(run_dir, "--pareto", size, "--format", "pytorch", "--out", out)
    assert written.exit_code == 0 and "of the Pareto front" in written.output, written.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"rank_{r['rank']}.py" for r in rows)


def test_pareto_refusals_are_one_line(run_dir):
    one_line_error(invoke(run_dir, "--pareto", "params", "--failures"), "--pareto does not apply to --failures")
    result = invoke(run_dir, "--pareto", "depth")
    assert result.exit_code == 2 and "depth" in result.output
