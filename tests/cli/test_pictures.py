"""`alife-nas heatmap | curves | export` on a tiny real run directory (cheap fake fitness)."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageSequence

from alife_nas.cli import main
from alife_nas.data import load_data
from alife_nas.export import top_architectures
from alife_nas.genome import parse_genome, parse_tuple_form
from alife_nas.store import Evaluation, RunStore
from alife_nas.training import Trainer
from tests.conftest import run_search

STEPS = 4
MAX_EPOCHS = 2  # the run's own training setting: a re-training must use it


def fake_score(genome, seed):
    """Deterministic, cheap: deeper is better, a checksum adds spread, long genomes 'fail'."""
    if len(genome) > 6:
        return {"genome": str(genome), "fitness": 0.0, "failure": "too many layers", "params": 0, "flops": 0, "epochs": 0}
    spread = (zlib.crc32(str(genome).encode()) % 100) / 2000
    return {"genome": str(genome), "fitness": round(0.5 + 0.05 * min(len(genome), 8) + spread, 4),
            "params": 1000 * len(genome), "flops": 5000 * len(genome), "epochs": 3, "best_epoch": 2, "train_time": 0.01}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits) -> Path:
    path = tmp_path_factory.mktemp("runs") / "run"
    # small networks, few epochs: the --retrain test really trains them
    run_search(path, fake_score, digits, lattice=3, steps=STEPS, seed=1, dataset="digits", filters=[16, 32],
               max_epochs=MAX_EPOCHS)
    with RunStore.open(path) as store:
        assert store.dataset_info["input_shape"] == [1, 8, 8] and store.dataset_info["num_classes"] == 10
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def evaluations(run_dir: Path) -> list[Evaluation]:
    store = RunStore.open(run_dir)
    try:
        return store.evaluations()
    finally:
        store.close()


def frames(path: Path) -> int:
    with Image.open(path) as im:
        return sum(1 for _ in ImageSequence.Iterator(im))


# --- heatmap ------------------------------------------------------------------------------------
def test_heatmap_last_step_by_default(run_dir: Path) -> None:
    result = invoke("heatmap", run_dir)
    assert result.exit_code == 0, result.output
    png = run_dir / "pictures" / f"fitness_step_{STEPS:04d}.png"
    assert png.stat().st_size > 5000 and str(png.name) in result.output
    assert Image.open(png).format == "PNG"


def test_heatmap_all_steps_frames_and_gif(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("heatmap", run_dir, "--step", "all", "--out", tmp_path, "--dpi", "50")
    assert result.exit_code == 0, result.output
    pngs = sorted(tmp_path.glob("fitness_step_*.png"))
    assert [p.name for p in pngs] == [f"fitness_step_{i:04d}.png" for i in range(STEPS + 1)]
    assert all(p.stat().st_size > 1000 for p in pngs)
    gif = tmp_path / "fitness_evolution.gif"
    assert gif.stat().st_size > 1000 and frames(gif) == STEPS + 1
    assert "fitness_evolution.gif" in result.output


@pytest.mark.parametrize("metric", ["depth", "params", "age"])
def test_heatmap_other_metrics_for_one_step(run_dir: Path, tmp_path: Path, metric: str) -> None:
    result = invoke("heatmap", run_dir, "--metric", metric, "--step", "2", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{metric}_step_0002.png").stat().st_size > 5000


@pytest.mark.parametrize("labels", ["genome", "fitness", "none"])
def test_heatmap_labels(run_dir: Path, tmp_path: Path, monkeypatch, labels: str) -> None:
    from tests.test_visualize import capture_cell_texts

    drawn = capture_cell_texts(monkeypatch)
    result = invoke("heatmap", run_dir, "--labels", labels, "--metric", "depth", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"depth_step_{STEPS:04d}.png").stat().st_size > 5000
    with RunStore.open(run_dir) as store:
        lattice = store.step_rows()[-1].lattice
    if labels == "genome":
        assert [t.replace("\n", "") for t in drawn[-1]] == [g for line in lattice["genomes"] for g in line]
    elif labels == "fitness":  # coloured by depth, the fitness written
        assert drawn[-1] == [f"{v:.3f}"[1:] if v > 0 else "fail" for line in lattice["fitness"] for v in line]
    else:
        assert drawn[-1] == []


def test_heatmap_labels_refuses_other_words(run_dir: Path) -> None:
    result = CliRunner().invoke(main, ["heatmap", str(run_dir), "--labels", "params"])
    assert result.exit_code == 2 and "params" in result.output


# --- curves -------------------------------------------------------------------------------------
def test_curves(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("curves", run_dir, "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    for name in ("fitness_curves.png", "best_vs_trainings.png"):
        assert (tmp_path / "c" / name).stat().st_size > 5000 and name in result.output


# --- a disk that refuses the pictures -----------------------------------------------------------
def _file_size_limit(limit: int):
    """For a child process: files may not grow past ``limit`` bytes; a write beyond fails with
    EFBIG (SIGXFSZ ignored) - what a full disk does to a picture halfway through."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("step", ["last", "all"])
def test_heatmap_that_the_disk_cuts_off_leaves_no_partial_png_and_says_so_in_one_line(run_dir: Path, tmp_path: Path,
                                                                                      step: str) -> None:
    out = tmp_path / "pics"
    proc = subprocess.run(
        [sys.executable, "-m", "alife_nas", "heatmap", str(run_dir), "--out", str(out), "--dpi", "300", "--step", step],
        capture_output=True, text=True, preexec_fn=_file_size_limit(40_000), cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    first = "pics/fitness_step_0000.png" if step == "all" else f"pics/fitness_step_{STEPS:04d}.png"
    assert proc.stderr.splitlines() == [f"Error: cannot write {first}: File too large; raise the file size limit "
                                        f"(ulimit -f) or write to another folder (--out)"]
    assert os.listdir(out) == []  # neither a 0-byte nor a cut-off PNG, nor a temporary file
    if step == "all":
        return
    # the same command under a limit its picture fits in: the limit, not something else, refused it
    proc = subprocess.run([sys.executable, "-m", "alife_nas", "heatmap", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=_file_size_limit(400_000), cwd=tmp_path)
    assert proc.returncode == 0 and Image.open(out / f"fitness_step_{STEPS:04d}.png").format == "PNG"


def test_curves_on_a_full_disk_is_one_line_and_leaves_no_partial_png(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    real_savefig = Figure.savefig

    def full_disk(fig, fname, *args, **kwargs):  # some bytes go out, then the disk is full
        real_savefig(fig, fname, *args, **kwargs)
        fname.truncate(0)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["curves", str(run_dir), "--out", "c"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["Error: cannot write c/fitness_curves.png: No space left on device; "
                                          "free some disk space or write to another folder (--out)"]
    assert os.listdir(tmp_path / "c") == []


@pytest.mark.parametrize("command", ["heatmap", "curves"])
def test_pictures_out_under_a_file_is_one_line(run_dir: Path, tmp_path: Path, command: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(main, [command, str(run_dir), "--out", str(tmp_path / "file" / "pics")])
    assert result.exit_code == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert f"cannot write {tmp_path / 'file' / 'pics'}: Not a directory; write to another folder (--out)" in result.stderr
    assert (tmp_path / "file").read_text() == "not a folder"


# --- export -------------------------------------------------------------------------------------
def test_export_json_to_stdout_round_trips(run_dir: Path) -> None:
    result = invoke("export", run_dir, "--top", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = top_architectures(evaluations(run_dir), k=3)
    assert [d["genome"] for d in data] == [r["genome"] for r in expected]
    assert [d["rank"] for d in data] == [1, 2, 3]
    assert all({"fitness", "params", "flops", "epochs", "step", "operator", "parents"} <= set(d) for d in data)
    assert [str(parse_genome(d["genome"])) for d in data] == [d["genome"] for d in data]


def test_export_top_larger_than_the_run_distinct_only(run_dir: Path) -> None:
    evs = evaluations(run_dir)
    distinct_ok = {e.genome for e in evs if not e.failure}
    result = invoke("export", run_dir, "--top", "100000", "--format", "json")
    data = json.loads(result.output)
    assert len(data) == len(distinct_ok) == len({d["genome"] for d in data})
    fits = [d["fitness"] for d in data]
    assert fits == sorted(fits, reverse=True) and min(fits) > 0


def test_export_paper_file_round_trips(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "top.txt"
    result = invoke("export", run_dir, "--top", "5", "--format", "paper", "--out", out)
    assert result.exit_code == 0, result.output
    assert "top.txt" in result.output
    parsed = [parse_tuple_form(line) for line in out.read_text().splitlines()]
    expected = top_architectures(evaluations(run_dir), k=5)
    assert [(n, str(g)) for n, _, g in parsed] == [(f"rank-{r['rank']}", r["genome"]) for r in expected]
    assert [s for _, s, _ in parsed] == pytest.approx([r["fitness"] for r in expected])


def test_export_markdown(run_dir: Path) -> None:
    result = invoke("export", run_dir, "--top", "2", "--format", "markdown")
    lines = [l for l in result.output.splitlines() if l.startswith("|")]
    assert len(lines) == 4 and "Architecture" in lines[0]


def test_export_pytorch_folder(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("export", run_dir, "--top", "3", "--format", "pytorch", "--out", tmp_path / "nets")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "nets").iterdir()) == ["rank_1.py", "rank_2.py", "rank_3.py"]
    result = invoke("export", run_dir, "--top", "1", "--format", "pytorch")  # default folder in the run
    assert (run_dir / "export-pytorch" / "rank_1.py").is_file()


@pytest.fixture
def one_torch_thread():
    """Two tiny CPU trainings are quickest on one thread (and do not crawl on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_export_retrain_adds_test_accuracy(run_dir: Path, one_torch_thread: None) -> None:
    result = CliRunner().invoke(
        main, ["export", str(run_dir), "--top", "2", "--format", "json", "--retrain", "--retrain-seeds", "2",
               "--device", "cpu"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["genome"] for d in data] == [r["genome"] for r in top_architectures(evaluations(run_dir), k=2)]
    assert "re-training 2 architectures" in result.stderr and "seeds 0..1" in result.stderr
    # The retraining policy: seeds 0..K-1 with the run's own data split and training settings, the test
    # accuracy of each training's best validation epoch, and their mean reported.
    with RunStore.open(run_dir) as store:
        config = store.config
    assert config.training.max_epochs == MAX_EPOCHS and config.training.patience == 0  # the fast preset
    trainer = Trainer(load_data(config.data), config.training, "cpu")
    for row in data:
        expected = [trainer.train(parse_genome(row["genome"]), seed=seed, evaluate_test=True) for seed in (0, 1)]
        assert all(r.failure is None and 0.0 < r.test_accuracy <= 1.0 for r in expected)
        assert row["retrain_seeds"] == [0, 1]
        assert row["retrain_epochs"] == [r.epochs for r in expected] == [MAX_EPOCHS, MAX_EPOCHS]
        assert row["test_accuracies"] == pytest.approx([r.test_accuracy for r in expected], abs=5e-5)
        assert row["test_accuracy"] == pytest.approx(sum(r.test_accuracy for r in expected) / 2, abs=5e-5)
        assert "retrain_failures" not in row


# --- user errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["heatmap", "{missing}"], "is not a directory"),
        (["heatmap", "{empty}"], "not an alife_nas run directory"),
        (["curves", "{missing}"], "is not a directory"),
        (["export", "{empty}"], "not an alife_nas run directory"),
        (["heatmap", "{run}", "--step", "soon"], "--step must be"),
        (["heatmap", "{run}", "--step", "99"], "step 99 is not in the run"),
        (["export", "{run}", "--retrain-seeds", "3"], "--retrain-seeds only applies with --retrain"),
        (["export", "{run}", "--format", "json", "--out", "{empty}"], "is a folder"),
    ],
)
def test_user_errors_are_one_line_exit_2(run_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    names = {"missing": tmp_path / "missing", "empty": empty, "run": run_dir}
    result = CliRunner().invoke(main, [a.format(**names) for a in args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "missing").exists() and list(empty.iterdir()) == []


def test_bad_choices_are_refused(run_dir: Path) -> None:
    assert CliRunner().invoke(main, ["heatmap", str(run_dir), "--metric", "colour"]).exit_code == 2
    assert CliRunner().invoke(main, ["export", str(run_dir), "--format", "csv"]).exit_code == 2
    assert CliRunner().invoke(main, ["export", str(run_dir), "--top", "0"]).exit_code == 2


def test_a_run_without_lattice_has_curves_but_no_heatmap(tmp_path: Path, digits) -> None:
    run_search(tmp_path / "random", fake_score, digits, strategy="random", steps=2, seed=3, filters=[16, 32])
    result = CliRunner().invoke(main, ["heatmap", str(tmp_path / "random")])
    assert result.exit_code == 2 and "has no lattice to draw" in result.output
    result = invoke("curves", tmp_path / "random", "--out", tmp_path / "pics")
    assert result.exit_code == 0 and [p.name for p in (tmp_path / "pics").iterdir()] == ["best_vs_trainings.png"]
