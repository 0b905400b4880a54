import subprocess
import sys

from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.run import Run, RunConfig
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
