"""One command to check this package on a GPU machine: CUDA tests, benchmarks and a CIFAR-shaped search.

    python experiments/gpu_check.py              # on a machine with a CUDA GPU
    python experiments/gpu_check.py --quick      # shorter benchmarks and a 6-step search
    python experiments/gpu_check.py --cpu-smoke  # the same parts on the CPU with tiny sizes (1-2 min)
    python experiments/gpu_check.py --parts tests,search --keep   # a subset; keep data and run dir

The full sizes aim at about 10 minutes on one GPU and --quick at a few, estimates from the
CPU timings that are not measured on a GPU yet; every part is killed after its time limit.

Parts, each run in its own subprocess so one failure (or a wedged GPU) cannot stop the rest:

* tests:    ``pytest tests/test_cuda.py``: passed / failed / skipped (on a GPU nothing may skip);
* trainer:  ``experiments/bench_trainer.py --device cuda``: our trainer against a DataLoader loop;
* parallel: ``experiments/bench_parallel.py --device cuda --masters 3 --budget 60``: speed-ups;
* search:   a generated CIFAR-10 look-alike written in the real on-disk format (pickled batches,
            with each class a coloured stripe pattern under noise, so a network can learn it)
            and ``alife-nas evolve --dataset cifar10 ... --no-download`` on it, then
            ``alife-nas status --json`` for its trainings and best fitness.

The output of every part is streamed as it runs; at the end the lines each part is judged by
and one summary table are printed. Exit code 0 when every part passed, 1 when any failed,
2 when there is no CUDA GPU (without ``--cpu-smoke``).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Per-class RGB tint (units of TINT_STEP) painted on stripes: ten distinct colours, so the
# class survives flips and shifts (the cifar10 augmentation) and a small CNN learns it quickly.
CLASS_TINTS = [(2, 0, 0), (0, 2, 0), (0, 0, 2), (2, 2, 0), (2, 0, 2), (0, 2, 2), (1, 1, 1), (2, 1, 0), (0, 1, 2), (1, 0, 1)]
TINT_STEP = 40
NOISE_MAX = 160  # noise is uniform 0..NOISE_MAX-1: the tint is visible, not trivial per pixel


# --- profiles ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """How big each part is: the full GPU check, a quick GPU check, or a tiny CPU smoke run."""

    name: str
    device: str
    trainer_args: tuple[str, ...]
    parallel_args: tuple[str, ...]
    per_batch: int  # images in each of the 5 training batches
    test_images: int
    lattice: int
    steps: int
    max_epochs: int
    search_args: tuple[str, ...] = ()
    timeout_s: int = 1800  # per part: a hung part is killed, the others still run


PROFILES = {
    "full": Profile(
        "full", "cuda",
        trainer_args=("--epochs", "3", "--repeats", "2"),
        parallel_args=("--masters", "3", "--budget", "60"),
        per_batch=1000, test_images=1000, lattice=5, steps=20, max_epochs=3,
    ),
    "quick": Profile(
        "quick", "cuda",
        trainer_args=("--epochs", "2", "--repeats", "1", "--genomes", "16-M-32-M"),
        parallel_args=("--masters", "3", "--budget", "30", "--workers", "2,4", "--epochs", "2"),
        per_batch=1000, test_images=1000, lattice=5, steps=6, max_epochs=2, timeout_s=900,
    ),
    "cpu-smoke": Profile(
        "cpu-smoke", "cpu",
        trainer_args=("--epochs", "1", "--repeats", "1", "--genomes", "16-M-32-M", "--copies", "1"),
        parallel_args=("--masters", "3", "--budget", "12", "--workers", "2", "--epochs", "1"),
        per_batch=40, test_images=40, lattice=3, steps=2, max_epochs=3,
        search_args=("--filters", "16,32"), timeout_s=300,
    ),
}
PARTS = ("tests", "trainer", "parallel", "search")


@dataclass
class PartResult:
    """One part's verdict, its key numbers (one line) and the output lines it was judged by."""

    name: str
    ok: bool
    numbers: str
    lines: list[str] = field(default_factory=list)


# --- running commands --------------------------------------------------------------------------
@dataclass
class Finished:
    """A finished command: exit code, combined output lines, wall time, whether it was killed."""

    returncode: int
    lines: list[str]
    seconds: float
    timed_out: bool


def run_command(cmd: Sequence[str], timeout_s: float, echo: bool = True) -> Finished:
    """Run ``cmd`` in the repository root, streaming its output (so long parts show progress) and capturing it."""
    if echo:
        print(f"$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    # A session of its own: on a timeout the whole group (worker processes too) is killed.
    proc = subprocess.Popen(list(cmd), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            bufsize=1, start_new_session=True)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if echo:
                print(f"    {lines[-1]}", flush=True)
        proc.wait()
    except BaseException:  # Ctrl-C reaches only this process (the child has its own session)
        kill()
        raise
    finally:
        timer.cancel()
    return Finished(proc.returncode, lines, time.perf_counter() - start, killed.is_set())


def check_finished(done: Finished, what: str, timeout_s: float) -> None:
    """Raise with the reason and the last output line when a command timed out or failed."""
    if done.timed_out:
        raise RuntimeError(f"{what} killed after {timeout_s:.0f} s")
    if done.returncode != 0:
        last = next((line for line in reversed(done.lines) if line.strip()), "")
        raise RuntimeError(f"{what} exited with {done.returncode}: {last.strip()[:200]}")


def python_cmd(*args: str) -> list[str]:
    """This interpreter, so the parts use the same environment as the check itself."""
    return [sys.executable, *args]


# --- part: the CUDA tests ----------------------------------------------------------------------
@dataclass
class PytestCounts:
    """Outcomes of a pytest run, from its JUnit XML report."""

    passed: int = 0
    failed: int = 0  # failures and errors
    skipped: int = 0
    failing: list[str] = field(default_factory=list)


def junit_counts(path: Path) -> PytestCounts:
    """passed / failed / skipped counts and failing test names from a pytest JUnit XML report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = PytestCounts()
    for case in (case for suite in suites for case in suite.iter("testcase")):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            counts.failed += 1
            counts.failing.append(case.get("name", "?"))
        elif "skipped" in kinds:
            counts.skipped += 1
        else:
            counts.passed += 1
    return counts


def tests_ok(counts: PytestCounts, returncode: int, device: str) -> bool:
    """Whether the test part passed: nothing failed, and on a GPU nothing skipped either."""
    # On a GPU a skip means the tests did not see the GPU: that is a failure of the check.
    skips_ok = device == "cpu" or counts.skipped == 0
    return returncode == 0 and counts.failed == 0 and counts.passed > 0 and skips_ok


def part_tests(profile: Profile, workdir: Path) -> PartResult:
    """Run tests/test_cuda.py; on a GPU every test must run and pass, on the CPU the CUDA ones skip."""
    report = workdir / "test_cuda.xml"
    cmd = python_cmd("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={report}", "tests/test_cuda.py")
    done = run_command(cmd, profile.timeout_s)
    if done.timed_out or not report.is_file():
        check_finished(done, "pytest", profile.timeout_s)
        raise RuntimeError(f"pytest wrote no report (exit {done.returncode})")
    c = junit_counts(report)
    numbers = f"{c.passed} passed, {c.failed} failed, {c.skipped} skipped"
    if c.failing:
        numbers += f" ({', '.join(c.failing)})"
    summary = [line for line in done.lines if re.search(r"\b(passed|failed|error)", line)]
    return PartResult("tests", tests_ok(c, done.returncode, profile.device), numbers, summary[-1:])


# --- part: trainer throughput ------------------------------------------------------------------
_RATIO = re.compile(r"^\s*(\S+): ours\s+(\d+) img/s \| reference\s+(\d+) img/s \| ratio\s+([\d.]+)x")


def parse_ratio_lines(lines: Sequence[str]) -> list[tuple[str, int, int, float]]:
    """(genome, ours img/s, reference img/s, ratio) from bench_trainer's result lines."""
    found = []
    for line in lines:
        m = _RATIO.match(line)
        if m:
            found.append((m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))))
    return found


def part_trainer(profile: Profile, workdir: Path) -> PartResult:
    """bench_trainer.py throughput: our trainer against a per-image DataLoader reference."""
    cmd = python_cmd("experiments/bench_trainer.py", "--device", profile.device, *profile.trainer_args)
    done = run_command(cmd, profile.timeout_s)
    check_finished(done, "bench_trainer.py", profile.timeout_s)
    ratios = parse_ratio_lines(done.lines)
    if not ratios:
        raise RuntimeError("bench_trainer.py printed no ratio line")
    numbers = "; ".join(f"{g} {r:.2f}x ({o} vs {ref} img/s)" for g, o, ref, r in ratios)
    return PartResult("trainer", True, numbers, [line for line in done.lines if _RATIO.match(line) or line.startswith("device=")])


# --- part: parallel speed-ups ------------------------------------------------------------------
_WORKERS = re.compile(r"^workers (\d+) vs serial: median ([\d.]+)x")
_MASTERS = re.compile(r"^masters (\d+) vs 1 .*: ([\d.]+)x\s*$")


def parse_parallel_lines(lines: Sequence[str]) -> tuple[list[tuple[int, float]], tuple[int, float] | None]:
    """([(workers, speed-up vs serial)], (masters, speed-up vs one master) or None) from bench_parallel's lines."""
    workers, masters = [], None
    for line in lines:
        if m := _WORKERS.match(line):
            workers.append((int(m.group(1)), float(m.group(2))))
        elif m := _MASTERS.match(line):
            masters = (int(m.group(1)), float(m.group(2)))
    return workers, masters


def part_parallel(profile: Profile, workdir: Path) -> PartResult:
    """bench_parallel.py: serial vs N concurrent trainings, and a K-master search vs one master."""
    cmd = python_cmd("experiments/bench_parallel.py", "--device", profile.device, *profile.parallel_args)
    done = run_command(cmd, profile.timeout_s)
    check_finished(done, "bench_parallel.py", profile.timeout_s)
    workers, masters = parse_parallel_lines(done.lines)
    if not workers or masters is None:
        raise RuntimeError("bench_parallel.py printed no workers or masters speed-up line")
    numbers = "workers " + ", ".join(f"{n}: {x:.2f}x" for n, x in workers) + f"; masters {masters[0]}: {masters[1]:.2f}x"
    kept = [line for line in done.lines if re.match(r"^(round|workers|masters) ", line)]
    return PartResult("parallel", True, numbers, kept)


# --- part: a search on a generated CIFAR-10 look-alike -----------------------------------------
def pattern_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 rows of 3072 (1024 R, 1024 G, 1024 B): noise plus the class's tint on horizontal stripes."""
    n = len(labels)
    images = rng.integers(0, NOISE_MAX, (n, 3, 32, 32)).astype(np.int32)
    tints = np.array(CLASS_TINTS, dtype=np.int32)[labels] * TINT_STEP  # n x 3
    widths = 1 + labels % 4  # stripe width in rows: a little spatial pattern on top of the colour
    rows = np.arange(32)[None, :]
    stripes = ((rows // widths[:, None]) % 2 == 0).astype(np.int32)  # n x 32
    images += tints[:, :, None, None] * stripes[:, None, :, None]
    return np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root: Path, per_batch: int = 1000, test_images: int = 1000, seed: int = 0) -> Path:
    """Write data_batch_1..5, test_batch and batches.meta under ``root/cifar-10-batches-py``, as torchvision lays them out."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(n: int) -> tuple[np.ndarray, list[int]]:
        labels = rng.permutation(np.arange(n) % 10)  # balanced classes
        return pattern_images(labels, rng), [int(v) for v in labels]

    for i in range(1, 6):
        data, labels = batch(per_batch)
        _pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels, "data": data,
                                             "filenames": [f"gen_{i}_{j}.png" for j in range(per_batch)]})
    data, labels = batch(test_images)
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels, "data": data,
                                    "filenames": [f"gen_test_{j}.png" for j in range(test_images)]})
    _pickle(folder / "batches.meta", {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return folder


def search_commands(profile: Profile, workdir: Path) -> tuple[list[str], list[str]]:
    """The evolve and status command lines of the search part (no download: the files are ours)."""
    run = workdir / "run"
    evolve = python_cmd("-m", "alife_nas", "evolve", "--out", str(run), "--dataset", "cifar10",
                        "--data-dir", str(workdir / "data"), "--lattice", str(profile.lattice),
                        "--steps", str(profile.steps), "--device", profile.device,
                        "--max-epochs", str(profile.max_epochs), "--no-download", *profile.search_args)
    status = python_cmd("-m", "alife_nas", "status", str(run), "--json")
    return evolve, status


def part_search(profile: Profile, workdir: Path) -> PartResult:
    """Write the generated CIFAR-10 files, evolve on them with the CLI, read the run's status."""
    write_cifar10(workdir / "data", profile.per_batch, profile.test_images)
    evolve, status_cmd = search_commands(profile, workdir)
    done = run_command(evolve, profile.timeout_s)
    check_finished(done, "alife-nas evolve", profile.timeout_s)
    status_run = subprocess.run(status_cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if status_run.returncode != 0:
        raise RuntimeError(f"alife-nas status exited with {status_run.returncode}: {status_run.stderr.strip()[:200]}")
    status = json.loads(status_run.stdout)
    best = status.get("best") or {}
    fitness = float(best.get("fitness") or 0.0)
    numbers = (f"{done.seconds:.0f} s, {status['steps_done']} steps, {status['trainings']} trainings, "
               f"{status['failures']} failures, best {fitness:.4f} {best.get('genome', '-')}")
    # The data set is learnable by design: a best fitness near chance (0.1) means training is broken.
    ok = status["steps_done"] == profile.steps and status["trainings"] > 0 and fitness > 0.2
    kept = [line for line in done.lines if line.startswith(("run ", "done:"))]
    return PartResult("search", ok, numbers, kept)


# --- the report --------------------------------------------------------------------------------
def run_part(name: str, part: Callable[[Profile, Path], PartResult], profile: Profile, workdir: Path) -> PartResult:
    """Run one part; any exception becomes a failed row, so the table is always printed."""
    print(f"=== {name} ===", flush=True)
    start = time.perf_counter()
    try:
        result = part(profile, workdir)
    except Exception as exc:  # one broken part must not hide the others' results
        result = PartResult(name, False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    print(f"=== {name}: {'ok' if result.ok else 'FAILED'} in {time.perf_counter() - start:.0f} s ===", flush=True)
    return result


def device_row(profile: Profile) -> PartResult:
    """The GPU's name and memory (asked last, so this process holds no CUDA context during the parts)."""
    import torch

    if profile.device == "cpu":
        return PartResult("device", True, f"cpu smoke run: {os.cpu_count()} cores, torch {torch.__version__}")
    try:
        props = torch.cuda.get_device_properties(0)
        count = torch.cuda.device_count()
        return PartResult("device", True, f"{props.name}, {props.total_memory / 2**30:.1f} GiB"
                          f"{f' (1 of {count})' if count > 1 else ''}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    except Exception as exc:
        return PartResult("device", False, f"cannot query the GPU: {type(exc).__name__}: {exc}")


def format_table(results: Sequence[PartResult]) -> str:
    """The summary: one row per part with ok/FAILED and its key numbers."""
    width = max(len(r.name) for r in results)
    rows = [f"{'part':<{width}}  {'result':<6}  key numbers", f"{'-' * width}  {'-' * 6}  {'-' * 11}"]
    rows += [f"{r.name:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.numbers}" for r in results]
    return "\n".join(rows)


def print_report(results: Sequence[PartResult], profile: Profile, seconds: float) -> None:
    """The lines each part was judged by, then the summary table."""
    print(f"\n===== gpu_check ({profile.name}, {seconds:.0f} s) =====")
    for r in results:
        if r.lines:
            print(f"[{r.name}]")
            print("\n".join(f"  {line.strip()}" for line in r.lines))
    print()
    print(format_table(results), flush=True)


# --- entry point -------------------------------------------------------------------------------
def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (a separate function so a test can pretend either way)."""
    import torch

    return torch.cuda.is_available()


PART_FUNCTIONS: dict[str, Callable[[Profile, Path], PartResult]] = {
    "tests": part_tests, "trainer": part_trainer, "parallel": part_parallel, "search": part_search,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter benchmarks and a 6-step search")
    p.add_argument("--cpu-smoke", action="store_true", help="run every part on the CPU with tiny sizes (tests this script)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--keep", action="store_true", help="keep the generated data and the search's run directory")
    args = p.parse_args(argv)
    args.parts = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = [name for name in args.parts if name not in PARTS]
    if unknown or not args.parts:
        p.error(f"--parts: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(PARTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen parts and print the table; 0 all ok, 1 a part failed, 2 no CUDA GPU."""
    args = parse_args(argv)
    if args.cpu_smoke:
        profile = PROFILES["cpu-smoke"]
    elif not cuda_available():
        print("gpu_check: no CUDA GPU is visible to torch; run it on a GPU machine (or --cpu-smoke to try the script on the CPU)")
        return 2
    else:
        profile = PROFILES["quick" if args.quick else "full"]
    workdir = Path(tempfile.mkdtemp(prefix="alife_gpu_check_"))
    start = time.perf_counter()
    try:
        results = [run_part(name, PART_FUNCTIONS[name], profile, workdir) for name in args.parts]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results.append(device_row(profile))
    print_report(results, profile, time.perf_counter() - start)
    if args.keep:
        print(f"kept: {workdir} (data/, run/)")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
