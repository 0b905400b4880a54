"""docs/api.md's examples run as written, with public names only."""
import re
from pathlib import Path

import alife_nas

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_ten_line_example_runs_a_real_search(tmp_path, monkeypatch, capsys):
    first = blocks()[0]
    assert len(first.strip().splitlines()) <= 10
    imported = re.findall(r"from alife_nas import (.+)", first)
    assert imported and all(name.strip() in alife_nas.__all__ for line in imported for name in line.split(","))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    exec(compile(first, str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [line for line in out[:3] if line.startswith("step ")] and len(out) == 5
    with alife_nas.RunStore.open(tmp_path / "runs" / "api-demo") as store:
        assert store.steps_done == 4 and store.config.method.lattice == 3
        assert store.config.training.max_epochs == 1 and all(e.epochs == 1 for e in store.evaluations())


def test_the_reading_example_runs_on_that_run(tmp_path, monkeypatch, capsys):
    from tests.conftest import run_search

    monkeypatch.chdir(tmp_path)
    run_search(tmp_path / "runs" / "api-demo", lattice=3, steps=2)
    exec(compile(blocks()[1], str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert "genome" in out[0] and [line.split()[0] for line in out[1:]] == ["1", "2", "3"]


def test_the_workflows_example_runs_on_that_run(tmp_path, monkeypatch, capsys, digits, one_torch_thread):
    from tests.conftest import run_search

    block = next(b for b in blocks() if "alife_nas.workflows import" in b)
    monkeypatch.chdir(tmp_path)
    run_search(tmp_path / "runs" / "api-demo", data=digits, dataset="digits", lattice=3, steps=2, filters=[16, 32],
               max_epochs=1)
    exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("re-training 1 architectures on digits") and out[2].startswith("   1. ")
    assert out[3] == "['rank_1.py', 'rank_1.pt']" and int(out[4].split()[0]) >= 9  # every training of the run
    assert out[5].endswith("['model.py', 'model.pt']") and 0 < float(out[5].split()[0]) <= 1
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["comparison.png", "comparison.txt"]
