"""experiments/gpu_check.py, piece by piece.

The whole ``--cpu-smoke`` run takes about three minutes on 2 cores (two benchmarks, a search and
the kill/resume check with four CLI runs; 160-190 s measured), too slow for the suite, so its pieces
are tested here: the generated CIFAR-10 files load through the real loader, the search part runs
the real CLI on them at the smallest size, the output parsers read the benchmarks' real line
formats (CIFAR header, deterministic-cost lines), MPS detection reads a fake /proc and pipe
directory, the kill/resume part kills and resumes a real run at the smallest size and its
comparison names the first difference, the tables get a row per measurement and a Markdown
table, a failing or hung part still ends in a table, without a GPU the script says so and
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


# --- CIFAR-sized benchmark data, deterministic cost, workers per GPU ---------------------------
def test_benchmarks_measure_on_cifar_sized_generated_files(gc, tmp_path):
    full, smoke = gc.PROFILES["full"], gc.PROFILES["cpu-smoke"]
    assert 5 * full.bench_per_batch == 50_000 and 5 * gc.PROFILES["quick"].bench_per_batch >= 20_000
    assert 5 * smoke.bench_per_batch <= 500  # tiny on the CPU
    trainer = " ".join(gc.trainer_command(full, tmp_path))
    for part in ("experiments/bench_trainer.py", "--device cuda", "--dataset cifar10", f"--data-dir {tmp_path}",
                 "--deterministic-cost"):
        assert part in trainer
    parallel = " ".join(gc.parallel_command(full, tmp_path))
    for part in ("experiments/bench_parallel.py", "--device cuda", "--dataset cifar10", f"--data-dir {tmp_path}",
                 "--workers 2,4,8", "--masters 3"):
        assert part in parallel
    # written once per check (the two benchmarks share it), and loadable by the real loader
    tiny = dataclasses.replace(smoke, bench_per_batch=10, bench_test=10)
    root = gc.bench_data(tiny, tmp_path)
    meta = root / "cifar-10-batches-py" / "batches.meta"
    written = meta.stat().st_mtime_ns
    assert gc.bench_data(tiny, tmp_path) == root and meta.stat().st_mtime_ns == written
    assert load_dataset("cifar10", data_dir=root).sizes() == {"train": 40, "val": 10, "test": 10}


def test_parse_bench_trainer_cifar_header_floor_and_deterministic_lines(gc):
    lines = [
        ("device=cuda torch=2.14.1 threads=16 data=cifar10 train=40000 val=10000 shape=(3, 32, 32) batch=128 epochs=3 "
         "aug=rotation 10.0 deg + shift 0.1 (paper preset) reference workers=8 repeats=2"),
        "start-up (not timed): data loaded and on cuda, loaders made in 3.1 s",
        ("       16-M-32-M: ours    41034 img/s | reference     9228 img/s | ratio  4.45x | model-only floor    52180 img/s "
         "(ours =  79% of floor) | medians 40805 / 9064 / 52153"),
        ("       16-M-32-M: deterministic    38171 img/s | autotuned    41034 img/s | ratio  0.93x (deterministic cuDNN "
         "/ autotuned) | medians 38000 / 40805"),
        ("       32-M-64-M: deterministic      165 img/s | autotuned      171 img/s | ratio  0.97x (deterministic cuDNN "
         "/ autotuned, a no-op on CPU) | medians 165 / 171"),
    ]
    assert gc.parse_bench_header(lines) == ("cifar10", 40000, 10000)
    assert gc.parse_bench_header(lines[1:]) is None
    assert gc.parse_ratio_lines(lines) == [("16-M-32-M", 41034, 9228, 4.45)]  # the deterministic lines are not ratios
    assert gc.parse_floor_lines(lines) == {"16-M-32-M": 52180}
    assert gc.parse_deterministic_lines(lines) == [("16-M-32-M", 38171, 41034, 0.93), ("32-M-64-M", 165, 171, 0.97)]
    # the old digits header (no data=) still parses as no header, not as a wrong one
    assert gc.parse_bench_header(["device=cpu torch=2.14.1 threads=2 train=2588 val=144 shape=(3, 32, 32)"]) is None


def _fake_process(proc: Path, pid: int, argv: list[str], comm: str) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + (b"\0" if argv else b""))
    (proc / str(pid) / "comm").write_text(comm + "\n")


def test_mps_detection_from_processes_and_the_control_pipe(gc, tmp_path):
    proc, pipe = tmp_path / "proc", tmp_path / "mps"
    _fake_process(proc, 1, ["/sbin/init"], "init")
    _fake_process(proc, 77, [], "kworker/0:1")  # a kernel thread: no command line
    (proc / "self").mkdir()  # not a pid
    off = gc.mps_status({}, proc, pipe)
    assert off.running is False and "not running" in off.detail and str(pipe / "control") in off.detail

    pipe.mkdir()
    (pipe / "control").write_text("")  # the daemon's FIFO; a plain file is enough for the check
    stale = gc.mps_status({}, proc, pipe)
    assert stale.running is None and "maybe running" in stale.detail

    _fake_process(proc, 4242, ["/usr/bin/nvidia-cuda-mps-control", "-d"], "nvidia-cuda-mps")
    _fake_process(proc, 4300, [], "nvidia-cuda-mps")  # cmdline unreadable: comm, cut to 15 characters
    on = gc.mps_status({}, proc, pipe)
    assert on.running is True and "nvidia-cuda-mps-control (pid 4242)" in on.detail and "(pid 4300)" in on.detail

    # CUDA_MPS_PIPE_DIRECTORY moves the pipe: the default place is then not looked at
    elsewhere = tmp_path / "elsewhere"
    moved = gc.mps_status({"CUDA_MPS_PIPE_DIRECTORY": str(elsewhere)}, tmp_path / "noproc", pipe)
    assert moved.running is False and str(elsewhere / "control") in moved.detail
    assert gc.mps_status({}, tmp_path / "noproc", pipe).running is None  # no /proc to read: the pipe alone


def test_parallel_part_reports_mps_in_the_table(gc, monkeypatch, tmp_path):
    lines = ["workers 2 vs serial: median 1.75x (rounds: 1.75)", "workers 8 vs serial: median 3.50x (rounds: 3.50)",
             "masters 3 vs 1 at ~60 trainings with 8 workers: 2.41x"]
    monkeypatch.setattr(gc, "run_command", lambda cmd, timeout_s, **kw: gc.Finished(0, lines, 1.0, False))
    monkeypatch.setattr(gc, "bench_data", lambda profile, workdir: tmp_path)
    monkeypatch.setattr(gc, "mps_status", lambda: gc.MpsState(False, "not running (fake)"))
    result = gc.part_parallel(gc.PROFILES["full"], tmp_path)
    assert result.ok and result.numbers == "workers 2: 1.75x, 8: 3.50x; masters 3: 2.41x"
    assert result.extra == [("mps", "not running (fake)")]
    table = gc.format_table([result])
    assert re.search(r"^  mps\s+not running \(fake\)$", table, re.MULTILINE)
    assert ("CUDA MPS during that measurement", "not running (fake)") in result.markdown


# --- the kill/resume part ----------------------------------------------------------------------
def _history(fitness=0.5, lattice=(("16", "32"),)):
    evals = [{"order": 1, "genome": "16", "fitness": 0.25, "step": 0, "history": [0.25]},
             {"order": 2, "genome": "32", "fitness": fitness, "step": 1, "history": [fitness]}]
    steps = [{"step": 0, "record": {"outcome": "init"}, "lattice": {"genomes": [list(r) for r in lattice]}}]
    return {"evaluations": evals, "steps": steps, "steps_done": 0}


def test_first_difference_of_two_run_histories(gc):
    assert gc.first_difference(_history(), _history()) is None
    diff = gc.first_difference(_history(), _history(fitness=0.5000001))
    assert diff.startswith("training 2 (32, step 1): ") and "fitness 0.5 vs 0.5000001" in diff and "history" in diff
    diff = gc.first_difference(_history(), _history(lattice=(("16", "64"),)))
    assert diff.startswith("step 0: lattice.genomes ") and "'32'" in diff and "'64'" in diff
    shorter = _history()
    shorter["evaluations"].pop()
    assert gc.first_difference(_history(), shorter) == "2 trainings uninterrupted vs 1 killed and resumed"


def test_run_command_stops_a_command_when_told(gc, tmp_path):
    flag = tmp_path / "now"
    code = "import time, pathlib; print('up', flush=True); pathlib.Path(%r).touch(); time.sleep(60)" % str(flag)
    start = time.perf_counter()
    done = gc.run_command([sys.executable, "-c", code], 60, echo=False, stop_when=flag.exists)
    assert done.stopped and not done.timed_out and done.returncode == -9 and done.lines == ["up"]
    assert time.perf_counter() - start < 30
    plain = gc.run_command([sys.executable, "-c", "print('x')"], 60, echo=False, stop_when=lambda: False)
    assert plain.returncode == 0 and not plain.stopped


def test_count_trainings_reads_a_run_database_read_only(gc, tmp_path):
    import sqlite3

    db = tmp_path / "run.sqlite"
    assert gc.count_trainings(db) == -1  # not made yet
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE evaluations (id INTEGER PRIMARY KEY, genome TEXT)")
    conn.executemany("INSERT INTO evaluations (genome) VALUES (?)", [("16",), ("32",), ("16-M",)])
    conn.commit()
    conn.close()
    before = db.read_bytes()
    assert gc.count_trainings(db) == 3 and db.read_bytes() == before


def test_resume_commands_are_deterministic_and_never_download(gc, tmp_path):
    evolve, resume = gc.resume_commands(gc.PROFILES["full"], tmp_path, tmp_path / "r")
    text = " ".join(evolve)
    for part in ("-m alife_nas evolve", f"--out {tmp_path / 'r'}", "--dataset cifar10", f"--data-dir {tmp_path / 'data'}",
                 "--device cuda", "--seed 3", "--deterministic", "--no-download"):
        assert part in text
    assert resume[-3:] == ["resume", str(tmp_path / "r"), "--no-download"]


def test_tables_have_a_row_per_measurement_and_markdown_for_the_docs(gc):
    results = [
        gc.PartResult("trainer", True, "cifar10: 16-M 4.00x", extra=[("deterministic", "16-M 0.93x")],
                      markdown=[("trainer vs reference, `16-M`", "ours 4 | 1"), ("deterministic, `16-M`", "**0.93×**")]),
        gc.PartResult("resume", False, "DIFFERENT at training 3"),
        gc.PartResult("device", True, "NVIDIA H200, 139.8 GiB"),
    ]
    table = gc.format_table(results)
    assert re.search(r"^  deterministic\s+16-M 0\.93x$", table, re.MULTILINE)
    assert re.search(r"^resume\s+FAILED\s+DIFFERENT", table, re.MULTILINE)
    md = gc.format_markdown(results, gc.PROFILES["quick"], when="2027-01-01").splitlines()
    assert md[0] == "| measurement (`python experiments/gpu_check.py --quick`, 2027-01-01) | result |"
    assert md[1] == "| --- | --- |" and md[2] == "| device | NVIDIA H200, 139.8 GiB |"  # the device first
    assert "| trainer vs reference, `16-M` | ours 4 \\| 1 |" in md and "| deterministic, `16-M` | **0.93×** |" in md
    assert md[-1] == "| resume | FAILED: DIFFERENT at training 3 |"
    assert gc.format_markdown(results, gc.PROFILES["full"]).startswith("| measurement (`python experiments/gpu_check.py`, ")


@pytest.mark.slow
def test_resume_part_kills_and_resumes_a_real_run_identically(gc, tmp_path):
    # The real part at its smallest: three CLI processes (uninterrupted, SIGKILLed, resumed), ~20 s on 2 cores.
    profile = dataclasses.replace(gc.PROFILES["cpu-smoke"], per_batch=20, test_images=20, resume_lattice=2, resume_steps=1,
                                  kill_at=(3,), resume_args=("--filters", "8,16", "--head", "gap"))
    result = gc.part_resume(profile, tmp_path)
    assert result.ok, result.numbers
    assert result.numbers.startswith("identical (") and "SIGKILL at 3 committed trainings" in result.numbers
    assert gc.run_history(tmp_path / "resume-killed")["evaluations"]  # something was compared
    assert result.markdown[0][1].startswith("identical")


@pytest.mark.slow
def test_trainer_part_on_tiny_generated_cifar_files(gc, tmp_path):
    # bench_trainer.py for real: its CIFAR header, ratio and deterministic lines are what the parsers read.
    profile = dataclasses.replace(gc.PROFILES["cpu-smoke"], bench_per_batch=20, bench_test=10,
                                  trainer_args=("--epochs", "1", "--repeats", "1", "--genomes", "8-M", "--batch-size", "32"))
    result = gc.part_trainer(profile, tmp_path)
    assert result.ok and result.numbers.startswith("cifar10 80 train / 20 val: 8-M ")
    assert result.extra[0][0] == "deterministic" and "(a no-op on CPU)" in result.extra[0][1]
    assert [label for label, _ in result.markdown] == [
        "trainer vs DataLoader reference (cifar10 80 train / 20 val), `8-M`",
        "deterministic cuDNN / autotuned (our trainer, same data), `8-M`"]
