"""experiments/gpu_check.py, piece by piece.

The whole ``--cpu-smoke`` run takes one to two minutes on 2 cores (two benchmarks and a search;
55 s when the machine is quiet, 110 s when it is shared), too slow for the suite, so its pieces
are tested here: the generated CIFAR-10 files load through the real loader, the search part runs
the real CLI on them at the smallest size, the output parsers read the benchmarks' real line
formats, a failing or hung part still ends in a table, without a GPU the script says so and
exits 2, and the script runs as a command with its cheapest part.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from alife_nas.data import load_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    """The script as a module (registered first: dataclasses look their module up while the class is made)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


# --- the generated CIFAR-10 look-alike ---------------------------------------------------------
def test_generated_cifar10_loads_with_the_real_loader(gc, tmp_path):
    gc.write_cifar10(tmp_path, per_batch=30, test_images=20, seed=1)
    d = load_dataset("cifar10", data_dir=tmp_path, val_size=0.2, download=False)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and d.classes == gc.CIFAR10_CLASSES
    assert d.sizes() == {"train": 120, "val": 30, "test": 20}
    for x, y in ((d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) <= 9
    everything = torch.cat([d.train_y, d.val_y])
    assert torch.bincount(everything, minlength=10).tolist() == [15] * 10  # 5 balanced batches of 30


def test_generated_rows_use_the_cifar_layout(gc):
    # A CIFAR row is 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major.
    labels = np.array([0, 2])  # red tint, blue tint
    rows = gc.pattern_images(labels, np.random.default_rng(0))
    assert rows.shape == (2, 3072) and rows.dtype == np.uint8
    images = rows.reshape(2, 3, 32, 32).astype(float)
    means = images.mean(axis=(2, 3))
    assert means[0, 0] > means[0, 2] + 10 and means[1, 2] > means[1, 0] + 10


def test_generated_classes_are_learnable(gc, tmp_path):
    # Nearest class-mean colour on the test split: far above chance (0.1), so a search on these
    # files measures whether training works at all.
    gc.write_cifar10(tmp_path, per_batch=50, test_images=100, seed=2)
    d = load_dataset("cifar10", data_dir=tmp_path)
    train, test = (x.double().mean(dim=(2, 3)) for x in (d.train_x, d.test_x))
    centroids = torch.stack([train[d.train_y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(test, centroids).argmin(1)
    assert (predicted == d.test_y).double().mean() > 0.9


# --- parsing the parts' output -----------------------------------------------------------------
def test_parse_bench_trainer_ratio_lines(gc):
    lines = [
        "device=cuda torch=2.14.1 threads=2 train=2588 val=144 shape=(3, 32, 32) batch=128 epochs=3",
        ("       16-M-32-M: ours     4034 img/s | reference     2228 img/s | ratio  1.81x | model-only floor     4180 img/s "
         "(ours =  96% of floor) | medians 3805 / 2064 / 4153"),
        "       32-M-64-M: ours     2056 img/s | reference     1248 img/s | ratio  1.65x | model-only floor     1767 img/s",
    ]
    assert gc.parse_ratio_lines(lines) == [("16-M-32-M", 4034, 2228, 1.81), ("32-M-64-M", 2056, 1248, 1.65)]


def test_parse_bench_parallel_lines(gc):
    lines = [
        "serial (cuda, torch threads 16): 8 trainings in 9.1 s = 1137 ms per training",
        "workers 2 vs serial: median 1.75x (rounds: 1.70, 1.75, 1.80)",
        "workers 4 vs serial: median 3.03x (rounds: 3.00, 3.03, 3.10)",
        "workers 2 vs serial with 1 thread: median 1.90x (rounds: 1.90, 1.91, 1.89)",
        "workers 2 vs serial: median 2.76x (rounds: 2.76)",
        "masters 1: 61 trainings in 20 steps, 80.0 s, best 0.9340",
        "masters 3 vs 1 at ~60 trainings with 8 workers: 2.41x",
    ]
    workers, masters = gc.parse_parallel_lines(lines)
    assert workers == [(2, 1.75), (4, 3.03), (2, 2.76)] and masters == (3, 2.41)
    assert gc.parse_parallel_lines(lines[:1]) == ([], None)


def test_junit_counts(gc, tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="4">'
        '<testcase classname="t" name="a"/>'
        '<testcase classname="t" name="b"><failure message="x"/></testcase>'
        '<testcase classname="t" name="c"><skipped message="needs a CUDA GPU"/></testcase>'
        '<testcase classname="t" name="d"><error message="fixture"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert gc.junit_counts(report) == gc.PytestCounts(passed=1, failed=2, skipped=1, failing=["b", "d"])


def test_tests_verdict_no_skips_on_a_gpu(gc):
    counts = gc.PytestCounts(passed=5, skipped=5)
    assert gc.tests_ok(counts, 0, "cpu") and not gc.tests_ok(counts, 0, "cuda")
    assert gc.tests_ok(gc.PytestCounts(passed=10), 0, "cuda")
    assert not gc.tests_ok(gc.PytestCounts(passed=9, failed=1), 1, "cuda")
    assert not gc.tests_ok(gc.PytestCounts(), 5, "cpu")  # nothing collected


def test_search_commands_are_the_cli_with_no_download(gc, tmp_path):
    evolve, status = gc.search_commands(gc.PROFILES["full"], tmp_path)
    text = " ".join(evolve)
    for part in ("-m alife_nas evolve", "--dataset cifar10", f"--data-dir {tmp_path / 'data'}", "--lattice 5",
                 "--steps 20", "--device cuda", "--max-epochs 3", "--no-download"):
        assert part in text
    assert status[-3:] == ["status", str(tmp_path / "run"), "--json"]


# --- running parts and the report --------------------------------------------------------------
def test_a_hung_command_is_killed_at_its_timeout(gc):
    start = time.perf_counter()
    done = gc.run_command([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], 1.5, echo=False)
    assert done.timed_out and done.returncode != 0 and done.lines == ["started"]
    assert time.perf_counter() - start < 30
    with pytest.raises(RuntimeError, match="killed after"):
        gc.check_finished(done, "sleeper", 1.5)


def test_a_failing_part_is_a_failed_row_and_exit_code_1(gc, monkeypatch, capsys):
    def broken(profile, workdir):
        raise ValueError("no such file\nsecond line")

    def fine(profile, workdir):
        assert workdir.is_dir()
        return gc.PartResult("fine", True, "3 passed", ["3 passed in 1.0s"])

    monkeypatch.setitem(gc.PART_FUNCTIONS, "tests", fine)
    monkeypatch.setitem(gc.PART_FUNCTIONS, "search", broken)
    assert gc.main(["--cpu-smoke", "--parts", "tests,search"]) == 1
    out = capsys.readouterr().out
    table = out[out.index("part "):]
    assert "fine" in table and "3 passed" in table
    assert "search" in table and "FAILED" in table and "ValueError: no such file second line" in table
    assert "device" in table and "cpu smoke run" in table

    monkeypatch.setitem(gc.PART_FUNCTIONS, "search", fine)
    assert gc.main(["--cpu-smoke", "--parts", "tests,search"]) == 0


def test_without_a_gpu_one_line_and_exit_code_2(gc, monkeypatch, capsys):
    monkeypatch.setattr(gc, "cuda_available", lambda: False)
    monkeypatch.setitem(gc.PART_FUNCTIONS, "tests", lambda p, w: pytest.fail("ran a part without a GPU"))
    assert gc.main([]) == 2 and gc.main(["--quick"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "no CUDA GPU" in lines[0] and "--cpu-smoke" in lines[0]


def test_unknown_part_is_refused(gc):
    with pytest.raises(SystemExit) as err:
        gc.parse_args(["--parts", "tests,nope"])
    assert err.value.code == 2


@pytest.mark.slow
def test_search_part_runs_the_cli_on_the_generated_files(gc, tmp_path):
    # The real part end to end (CLI evolve + status --json) at the smallest size that still
    # goes through initialisation and one evolution step.
    profile = dataclasses.replace(gc.PROFILES["cpu-smoke"], lattice=2, steps=1, max_epochs=1, per_batch=20,
                                  test_images=20, search_args=("--filters", "8,16"))
    result = gc.part_search(profile, tmp_path)
    assert result.name == "search" and "1 steps" in result.numbers and "0 failures" in result.numbers
    assert any(line.startswith("done:") for line in result.lines)


@pytest.mark.slow
def test_the_script_as_a_command(tmp_path):
    # The entry point as a GPU user runs it, with the cheapest part (the CPU tests of test_cuda.py).
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--parts", "tests"], cwd=SCRIPT.parents[1],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = done.stdout[done.stdout.index("===== gpu_check (cpu-smoke"):]
    assert re.search(r"^tests\s+ok\s+\d+ passed, 0 failed, \d+ skipped", table, re.MULTILINE)
    assert re.search(r"^device\s+ok\s+cpu smoke run", table, re.MULTILINE)
