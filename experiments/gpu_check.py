"""One command to check this package on a GPU machine: CUDA tests, benchmarks and a CIFAR-shaped search.

    python experiments/gpu_check.py              # on a machine with a CUDA GPU
    python experiments/gpu_check.py --quick      # shorter benchmarks and a 6-step search
    python experiments/gpu_check.py --cpu-smoke  # the same parts on the CPU with tiny sizes (~3 min on 2 cores)
    python experiments/gpu_check.py --parts tests,search --keep   # a subset; keep data and run dirs

The full sizes aim at about 10-15 minutes on one GPU and --quick at a few, estimates from the
CPU timings that are not measured on a GPU yet; every part is killed after its time limit.

The data are a generated CIFAR-10 look-alike written in the real on-disk format (pickled
batches, each class a coloured stripe pattern under noise, so a network can learn it) and read
through the package's real loader: CIFAR-sized for the benchmarks (50,000 training images at
full size, 25,000 with --quick: 40,000 / 20,000 after the validation carve), smaller for the
runs. Parts, each run in its own subprocess so one failure (or a wedged GPU) cannot stop the rest:

* tests:    ``pytest tests/test_cuda.py``: passed / failed / skipped (on a GPU nothing may skip);
* trainer:  ``experiments/bench_trainer.py --device cuda --dataset cifar10 --deterministic-cost``:
            our trainer against a DataLoader loop (start-up outside the timed runs), and ours with
            deterministic cuDNN against autotuned cuDNN;
* parallel: ``experiments/bench_parallel.py --device cuda --dataset cifar10 --workers 2,4,8
            --masters 3``: serial vs 2/4/8 trainings at once on the GPU, K masters vs one; and
            whether CUDA MPS is running (detected, never started or stopped);
* search:   ``alife-nas evolve --dataset cifar10 ... --no-download`` on the generated files, then
            ``alife-nas status --json`` for its trainings and best fitness;
* resume:   the same kind of run with ``--deterministic`` twice: once uninterrupted, once
            SIGKILLed after a few committed trainings (the run's database polled read-only) and
            ``alife-nas resume``d to the end; the two histories (trainings' genomes, fitness and
            curves, step records, final lattice; not times) must be identical.

The output of every part is streamed as it runs; at the end come the lines each part is judged
by, one summary table, and the same numbers as a Markdown table for docs/training.md ("On a GPU
machine"). Exit code 0 when every part passed, 1 when any failed, 2 when there is no CUDA GPU
(without ``--cpu-smoke``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the resume part reads run databases with the package's own store
    sys.path.insert(0, str(ROOT))
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
    # the benchmarks' CIFAR-sized data: 5 training batches of bench_per_batch, a test batch of bench_test
    bench_per_batch: int = 10_000
    bench_test: int = 10_000
    # the kill/resume part: a run of this size on the search's data, SIGKILLed once the run's database
    # holds each count of trainings in kill_at (then resumed), compared with the same run uninterrupted
    resume_lattice: int = 3
    resume_steps: int = 4
    resume_epochs: int = 2
    kill_at: tuple[int, ...] = (4, 12)
    resume_args: tuple[str, ...] = ()


PROFILES = {
    "full": Profile(
        "full", "cuda",
        trainer_args=("--epochs", "3", "--repeats", "2"),
        parallel_args=("--masters", "3", "--budget", "60", "--workers", "2,4,8", "--epochs", "2"),
        per_batch=1000, test_images=1000, lattice=5, steps=20, max_epochs=3,
    ),
    "quick": Profile(
        "quick", "cuda",
        trainer_args=("--epochs", "2", "--repeats", "1", "--genomes", "16-M-32-M"),
        parallel_args=("--masters", "3", "--budget", "30", "--workers", "2,4,8", "--epochs", "1", "--rounds", "2"),
        per_batch=1000, test_images=1000, lattice=5, steps=6, max_epochs=2, timeout_s=900,
        bench_per_batch=5_000, bench_test=2_000, resume_steps=3, kill_at=(6,),
    ),
    "cpu-smoke": Profile(
        "cpu-smoke", "cpu",
        trainer_args=("--epochs", "1", "--repeats", "1", "--genomes", "16-M-32-M"),
        parallel_args=("--masters", "3", "--budget", "10", "--workers", "2", "--epochs", "1", "--rounds", "1",
                       "--repeat", "1"),
        per_batch=40, test_images=40, lattice=3, steps=2, max_epochs=3,
        search_args=("--filters", "16,32"), timeout_s=300,
        bench_per_batch=60, bench_test=60,
        resume_lattice=2, resume_steps=2, resume_epochs=1, kill_at=(3, 6), resume_args=("--filters", "16,32"),
    ),
}
PARTS = ("tests", "trainer", "parallel", "search", "resume")


@dataclass
class PartResult:
    """One part's verdict, its key numbers (one line) and the output lines it was judged by.

    ``extra`` are more rows of the summary table under the part's own, (label, numbers);
    ``markdown`` the (measurement, result) rows this part adds to the Markdown table for the docs.
    """

    name: str
    ok: bool
    numbers: str
    lines: list[str] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    markdown: list[tuple[str, str]] = field(default_factory=list)


# --- running commands --------------------------------------------------------------------------
@dataclass
class Finished:
    """A finished command: exit code, combined output lines, wall time, whether it was killed at its
    time limit (``timed_out``) or because ``stop_when`` said so (``stopped``)."""

    returncode: int
    lines: list[str]
    seconds: float
    timed_out: bool
    stopped: bool = False


def run_command(cmd: Sequence[str], timeout_s: float, echo: bool = True,
                stop_when: Callable[[], bool] | None = None) -> Finished:
    """Run ``cmd`` in the repository root, streaming its output (so long parts show progress) and capturing it.

    ``stop_when``, polled every 10 ms while the command runs, SIGKILLs the command's whole process
    group the first time it returns true (the resume part's kills).
    """
    if echo:
        print(f"$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    # A session of its own: on a timeout the whole group (worker processes too) is killed.
    # Unbuffered children: their lines arrive as they are printed, not in blocks at the end.
    proc = subprocess.Popen(list(cmd), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            bufsize=1, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    stopped, ended = threading.Event(), threading.Event()

    def watch() -> None:
        while not ended.is_set() and proc.poll() is None:
            if stop_when is not None and stop_when():
                stopped.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    if stop_when is not None:
        threading.Thread(target=watch, daemon=True).start()
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
        ended.set()
    return Finished(proc.returncode, lines, time.perf_counter() - start, killed.is_set(), stopped.is_set())


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
    return PartResult("tests", tests_ok(c, done.returncode, profile.device), numbers, summary[-1:],
                      markdown=[("CUDA tests (`tests/test_cuda.py`)", numbers)])


# --- the benchmarks' data ----------------------------------------------------------------------
def ensure_cifar10(root: Path, per_batch: int, test_images: int) -> Path:
    """``root`` holding the generated CIFAR-10 files, written unless a complete set is there already
    (batches.meta is written last). Parts that share a folder share its sizes."""
    if not (root / "cifar-10-batches-py" / "batches.meta").is_file():
        start = time.perf_counter()
        write_cifar10(root, per_batch, test_images)
        print(f"wrote a CIFAR-10 look-alike: {5 * per_batch:,} training + {test_images:,} test images in "
              f"{time.perf_counter() - start:.1f} s to {root}", flush=True)
    return root


def bench_data(profile: Profile, workdir: Path) -> Path:
    """The CIFAR-sized data both benchmarks measure on (generated once per check, never timed)."""
    return ensure_cifar10(workdir / "bench-data", profile.bench_per_batch, profile.bench_test)


def bench_data_label(profile: Profile) -> str:
    """The benchmarks' data in a few words for the tables (the loader keeps 80% for training)."""
    return f"CIFAR-10 look-alike, {5 * profile.bench_per_batch:,} images"


# --- part: trainer throughput ------------------------------------------------------------------
_RATIO = re.compile(r"^\s*(\S+): ours\s+(\d+) img/s \| reference\s+(\d+) img/s \| ratio\s+([\d.]+)x")
_FLOOR = re.compile(r"\| model-only floor\s+(\d+) img/s")
_DETERMINISTIC = re.compile(r"^\s*(\S+): deterministic\s+(\d+) img/s \| autotuned\s+(\d+) img/s \| ratio\s+([\d.]+)x")
_HEADER = re.compile(r"^device=\S+ .*?\bdata=(\S+) train=(\d+) val=(\d+)")


def parse_ratio_lines(lines: Sequence[str]) -> list[tuple[str, int, int, float]]:
    """(genome, ours img/s, reference img/s, ratio) from bench_trainer's result lines."""
    found = []
    for line in lines:
        m = _RATIO.match(line)
        if m:
            found.append((m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))))
    return found


def parse_floor_lines(lines: Sequence[str]) -> dict[str, int]:
    """genome -> model-only floor img/s, from the same result lines."""
    return {m.group(1): int(f.group(1)) for line in lines if (m := _RATIO.match(line)) and (f := _FLOOR.search(line))}


def parse_deterministic_lines(lines: Sequence[str]) -> list[tuple[str, int, int, float]]:
    """(genome, deterministic img/s, autotuned img/s, deterministic / autotuned) from bench_trainer --deterministic-cost."""
    return [(m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4)))
            for line in lines if (m := _DETERMINISTIC.match(line))]


def parse_bench_header(lines: Sequence[str]) -> tuple[str, int, int] | None:
    """(data set, training images, validation images) from bench_trainer's first line, or None."""
    for line in lines:
        if m := _HEADER.match(line):
            return m.group(1), int(m.group(2)), int(m.group(3))
    return None


def trainer_command(profile: Profile, data_dir: Path) -> list[str]:
    """bench_trainer.py on the generated CIFAR-10 files, with the deterministic-cuDNN comparison."""
    return python_cmd("experiments/bench_trainer.py", "--device", profile.device, "--dataset", "cifar10",
                      "--data-dir", str(data_dir), "--deterministic-cost", *profile.trainer_args)


def part_trainer(profile: Profile, workdir: Path) -> PartResult:
    """bench_trainer.py throughput on CIFAR-sized data: our trainer against a per-image DataLoader
    reference, and deterministic cuDNN against autotuning."""
    cmd = trainer_command(profile, bench_data(profile, workdir))
    done = run_command(cmd, profile.timeout_s)
    check_finished(done, "bench_trainer.py", profile.timeout_s)
    ratios, det = parse_ratio_lines(done.lines), parse_deterministic_lines(done.lines)
    if not ratios:
        raise RuntimeError("bench_trainer.py printed no ratio line")
    if not det:
        raise RuntimeError("bench_trainer.py printed no deterministic line")
    floors, header = parse_floor_lines(done.lines), parse_bench_header(done.lines)
    data = f"{header[0]} {header[1]:,} train / {header[2]:,} val" if header else bench_data_label(profile)
    numbers = f"{data}: " + "; ".join(f"{g} {r:.2f}x ({o} vs {ref} img/s)" for g, o, ref, r in ratios)
    extra = [("deterministic", "; ".join(f"{g} {r:.2f}x ({d} vs {a} img/s)" for g, d, a, r in det)
              + (" (a no-op on CPU)" if profile.device == "cpu" else ""))]
    markdown = []
    for g, o, ref, r in ratios:
        floor = f"; model-only floor {floors[g]:,} img/s" if g in floors else ""
        markdown.append((f"trainer vs DataLoader reference ({data}), `{g}`",
                         f"ours {o:,} img/s, reference {ref:,} img/s: **{r:.2f}×**{floor}"))
    markdown += [(f"deterministic cuDNN / autotuned (our trainer, same data), `{g}`", f"**{r:.2f}×** ({d:,} vs {a:,} img/s)")
                 for g, d, a, r in det]
    kept = [line for line in done.lines if _RATIO.match(line) or _DETERMINISTIC.match(line)
            or line.startswith(("device=", "start-up"))]
    return PartResult("trainer", True, numbers, kept, extra, markdown)


# --- CUDA MPS ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MpsState:
    """Whether CUDA MPS runs: True, False, or None (a control pipe but no MPS process visible)."""

    running: bool | None
    detail: str


def mps_processes(proc_root: Path = Path("/proc")) -> list[str]:
    """'name (pid N)' of every visible process whose program is nvidia-cuda-mps-control or -server."""
    found = []
    try:
        entries = list(proc_root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:  # argv[0]'s file name; comm (cut to 15 characters) for processes without a command line
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
            name = os.path.basename(argv0) or (entry / "comm").read_text().strip()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if name.startswith("nvidia-cuda-mps"):
            found.append(f"{name} (pid {entry.name})")
    return sorted(found)


def mps_status(env: Mapping[str, str] | None = None, proc_root: Path = Path("/proc"),
               default_pipe: Path = Path("/tmp/nvidia-mps")) -> MpsState:
    """Whether the CUDA MPS control daemon runs, from its processes and its control pipe
    (``$CUDA_MPS_PIPE_DIRECTORY/control``, default /tmp/nvidia-mps/control). Only looks: MPS is
    never started or stopped here."""
    env = os.environ if env is None else env
    pipe = Path(env.get("CUDA_MPS_PIPE_DIRECTORY") or default_pipe)
    control = pipe / "control"
    has_pipe = control.exists()
    processes = mps_processes(proc_root)
    if processes:
        return MpsState(True, f"running: {', '.join(processes)}; {control} {'exists' if has_pipe else 'missing'}")
    if has_pipe:
        return MpsState(None, f"maybe running: {control} exists, but no MPS process is visible here "
                              "(another PID namespace, or a pipe left by a daemon that ended)")
    return MpsState(False, f"not running (no nvidia-cuda-mps-control process, no {control})")


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


def parallel_command(profile: Profile, data_dir: Path) -> list[str]:
    """bench_parallel.py on the benchmarks' CIFAR-sized files."""
    return python_cmd("experiments/bench_parallel.py", "--device", profile.device, "--dataset", "cifar10",
                      "--data-dir", str(data_dir), *profile.parallel_args)


def part_parallel(profile: Profile, workdir: Path) -> PartResult:
    """bench_parallel.py: serial vs N concurrent trainings on one device, a K-master search vs one
    master; and whether CUDA MPS is running, which changes how concurrent trainings share a GPU."""
    mps = mps_status()
    print(f"CUDA MPS: {mps.detail}", flush=True)
    cmd = parallel_command(profile, bench_data(profile, workdir))
    done = run_command(cmd, profile.timeout_s)
    check_finished(done, "bench_parallel.py", profile.timeout_s)
    workers, masters = parse_parallel_lines(done.lines)
    if not workers or masters is None:
        raise RuntimeError("bench_parallel.py printed no workers or masters speed-up line")
    numbers = "workers " + ", ".join(f"{n}: {x:.2f}x" for n, x in workers) + f"; masters {masters[0]}: {masters[1]:.2f}x"
    kept = [line for line in done.lines if re.match(r"^(round|workers|masters) ", line)]
    where = "one GPU" if profile.device.startswith("cuda") else profile.device
    markdown = [
        (f"N trainings at once on {where} vs serial ({bench_data_label(profile)}, fast preset)",
         ", ".join(f"{n}: **{x:.2f}×**" for n, x in workers)),
        ("CUDA MPS during that measurement", mps.detail),
        (f"{masters[0]} masters vs 1 at an equal number of trainings", f"{masters[1]:.2f}×"),
    ]
    return PartResult("parallel", True, numbers, kept, [("mps", mps.detail)], markdown)


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
    ensure_cifar10(workdir / "data", profile.per_batch, profile.test_images)
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
    label = f"{profile.steps}-step search (`alife-nas evolve`, lattice {profile.lattice}) on a {5 * profile.per_batch:,}-image CIFAR-10 look-alike"
    return PartResult("search", ok, numbers, kept, markdown=[(label, numbers)])


# --- part: SIGKILL and resume against an uninterrupted run -------------------------------------
# What two runs of the same command may differ in: clocks, never results.
EVALUATION_TIMES = ("created_at", "train_time", "images_per_sec")
STEP_TIMES = ("wall_time", "finished_at", "strategy_state", "rng_state")  # the states: only the newest is kept


def resume_commands(profile: Profile, workdir: Path, run: Path) -> tuple[list[str], list[str]]:
    """The evolve and resume command lines of the resume part: deterministic cuDNN, a fixed seed, no download."""
    evolve = python_cmd("-m", "alife_nas", "evolve", "--out", str(run), "--dataset", "cifar10",
                        "--data-dir", str(workdir / "data"), "--lattice", str(profile.resume_lattice),
                        "--steps", str(profile.resume_steps), "--device", profile.device,
                        "--max-epochs", str(profile.resume_epochs), "--seed", "3", "--deterministic", "--no-download",
                        *profile.resume_args)
    resume = python_cmd("-m", "alife_nas", "resume", str(run), "--no-download")
    return evolve, resume


def count_trainings(db: Path) -> int:
    """Trainings committed to a run's database, read-only (never in the writer's way); -1 while unreadable."""
    if not db.is_file():
        return -1
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def run_history(run_dir: Path) -> dict:
    """What a kill and a resume must not change: every training (genome, fitness, curve, seed, ...,
    not its times), every step record with its lattice (the last one: the final lattice), steps done."""
    from alife_nas.store import RunStore

    with RunStore.open(run_dir, readonly=True) as store:
        evaluations = [{k: v for k, v in e.to_dict().items() if k not in EVALUATION_TIMES} for e in store.evaluations()]
        steps = [{k: v for k, v in asdict(row).items() if k not in STEP_TIMES} for row in store.step_rows()]
        return {"evaluations": evaluations, "steps": steps, "steps_done": store.steps_done}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _differing(x: Mapping, y: Mapping, prefix: str = "") -> str:
    """The first few keys whose values differ, nested dicts followed down: 'fitness 0.41 vs 0.42'."""
    first = ("genome", "fitness", "history", "lattice")  # the telling ones before the rest, alphabetical
    keys = sorted((k for k in set(x) | set(y) if x.get(k) != y.get(k)), key=lambda k: (k not in first, first.index(k) if k in first else 0, str(k)))
    parts = []
    for k in keys[:3]:
        u, v = x.get(k), y.get(k)
        if isinstance(u, Mapping) and isinstance(v, Mapping):
            parts.append(_differing(u, v, f"{prefix}{k}."))
        else:
            parts.append(f"{prefix}{k} {_short(u)} vs {_short(v)}")
    return "; ".join(parts) + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")


def first_difference(whole: dict, resumed: dict) -> str | None:
    """None when the two histories are identical, else where they first differ (uninterrupted value first)."""
    a, b = whole["evaluations"], resumed["evaluations"]
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"training {i + 1} ({x.get('genome')}, step {x.get('step')}): {_differing(x, y)}"
    if len(a) != len(b):
        return f"{len(a)} trainings uninterrupted vs {len(b)} killed and resumed"
    for x, y in zip(whole["steps"], resumed["steps"]):
        if x != y:
            return f"step {x.get('step')}: {_differing(x, y)}"
    if len(whole["steps"]) != len(resumed["steps"]) or whole["steps_done"] != resumed["steps_done"]:
        return f"{whole['steps_done']} steps uninterrupted vs {resumed['steps_done']} killed and resumed"
    return None


def part_resume(profile: Profile, workdir: Path) -> PartResult:
    """The same deterministic run twice: uninterrupted, and SIGKILLed at each of ``kill_at`` committed
    trainings then resumed to the end; their histories must be identical."""
    from alife_nas.store import DB_NAME

    ensure_cifar10(workdir / "data", profile.per_batch, profile.test_images)
    whole, killed = workdir / "resume-whole", workdir / "resume-killed"
    for folder in (whole, killed):
        shutil.rmtree(folder, ignore_errors=True)
    evolve, _ = resume_commands(profile, workdir, whole)
    done = run_command(evolve, profile.timeout_s)
    check_finished(done, "alife-nas evolve (uninterrupted)", profile.timeout_s)

    evolve, resume = resume_commands(profile, workdir, killed)
    db = killed / DB_NAME
    kills: list[int] = []
    for target in profile.kill_at:
        cmd = resume if db.exists() else evolve
        print(f"(SIGKILL once {target} trainings are committed)", flush=True)
        run = run_command(cmd, profile.timeout_s, stop_when=lambda target=target: count_trainings(db) >= target)
        if run.stopped:
            kills.append(count_trainings(db))
            continue
        check_finished(run, "alife-nas before its SIGKILL", profile.timeout_s)
        break  # the run ended before this many trainings: nothing left to kill
    final = run_command(resume, profile.timeout_s)
    check_finished(final, "alife-nas resume", profile.timeout_s)

    history, resumed = run_history(whole), run_history(killed)
    diff = first_difference(history, resumed)
    size = f"{len(history['evaluations'])} trainings, {history['steps_done']} steps"
    how = f"SIGKILL at {', '.join(map(str, kills))} committed trainings" if kills else \
        f"no SIGKILL landed: the run ended before {profile.kill_at[0]} trainings"
    if diff is None:
        numbers = f"identical ({size}; {how}; --deterministic on {profile.device})"
    else:
        numbers = f"DIFFERENT at {diff} ({size}; {how}; --deterministic on {profile.device})"
    kept = [f"uninterrupted: {line}" for line in done.lines if line.startswith("done:")]
    kept += [f"killed and resumed: {line}" for line in final.lines if line.startswith("done:")]
    label = f"SIGKILL + `alife-nas resume` vs the uninterrupted run, `--deterministic` on {profile.device}"
    result = "identical" if diff is None else f"first difference: {diff}"
    markdown = [(label, f"{result} ({size}; {how})")]
    return PartResult("resume", diff is None and bool(kills), numbers, kept, markdown=markdown)


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
    """The summary: one row per part with ok/FAILED and its key numbers, and its extra measurements under it."""
    width = max([len(r.name) for r in results] + [2 + len(label) for r in results for label, _ in r.extra])
    rows = [f"{'part':<{width}}  {'result':<6}  key numbers", f"{'-' * width}  {'-' * 6}  {'-' * 11}"]
    for r in results:
        rows.append(f"{r.name:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.numbers}")
        rows += [f"{'  ' + label:<{width}}  {'':<6}  {numbers}" for label, numbers in r.extra]
    return "\n".join(rows)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def format_markdown(results: Sequence[PartResult], profile: Profile, when: str | None = None) -> str:
    """The measurements as a Markdown table for docs/training.md: the device first, then each part's rows
    (a failed part: its name and why)."""
    flag = "" if profile.name == "full" else f" --{profile.name}"
    when = when or time.strftime("%Y-%m-%d")
    rows = [(f"measurement (`python experiments/gpu_check.py{flag}`, {when})", "result"), ("---", "---")]
    ordered = sorted(results, key=lambda r: r.name != "device")
    for r in ordered:
        if not r.ok:
            rows.append((r.name, f"FAILED: {r.numbers}"))
        else:
            rows += r.markdown or [(r.name, r.numbers)]
    return "\n".join(f"| {_cell(a)} | {_cell(b)} |" for a, b in rows)


def print_report(results: Sequence[PartResult], profile: Profile, seconds: float) -> None:
    """The lines each part was judged by, then the summary table."""
    print(f"\n===== gpu_check ({profile.name}, {seconds:.0f} s) =====")
    for r in results:
        if r.lines:
            print(f"[{r.name}]")
            print("\n".join(f"  {line.strip()}" for line in r.lines))
    print()
    print(format_table(results))
    print("\nFor docs/training.md (\"On a GPU machine\"):\n")
    print(format_markdown(results, profile), flush=True)


# --- entry point -------------------------------------------------------------------------------
def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (a separate function so a test can pretend either way)."""
    import torch

    return torch.cuda.is_available()


PART_FUNCTIONS: dict[str, Callable[[Profile, Path], PartResult]] = {
    "tests": part_tests, "trainer": part_trainer, "parallel": part_parallel, "search": part_search,
    "resume": part_resume,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter benchmarks and a 6-step search")
    p.add_argument("--cpu-smoke", action="store_true", help="run every part on the CPU with tiny sizes (tests this script)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--keep", action="store_true", help="keep the generated data and the runs' directories")
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
        print(f"kept: {workdir} (bench-data/, data/, run/, resume-whole/, resume-killed/)")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
