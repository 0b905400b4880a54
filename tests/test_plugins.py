"""Strategies and executors from outside alife_nas, found through entry points.

The fixtures install tests/plugins/alife_nas_tiny.py as a distribution would be installed: a
directory on the path with the module and an ``alife_nas_tiny-0.0.dist-info`` holding its entry
points (``importlib.metadata`` reads exactly that). A subprocess sees it through PYTHONPATH.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import alife_nas
from alife_nas.config import SearchConfig
from alife_nas.contract import check_strategy
from alife_nas.executors import EXECUTORS, make_executor
from alife_nas.store import RunStore
from alife_nas.strategies import BUILTIN, STRATEGIES, RandomSearch
from tests.conftest import run_search
from tests.test_imports import PACKAGE, imports_of

PLUGIN = Path(__file__).parent / "plugins" / "alife_nas_tiny.py"

TINY_POINTS = """\
[alife_nas.strategies]
tiny = alife_nas_tiny:TinyStrategy

[alife_nas.executors]
serial-again = alife_nas_tiny:serial_again
"""

BROKEN_POINTS = """\
[alife_nas.strategies]
missing = alife_nas_no_such_module:Thing
not-a-strategy = alife_nas_tiny:NotAStrategy
random = alife_nas_tiny:TinyStrategy
misnamed = alife_nas_tiny:TinyStrategy

[alife_nas.executors]
broken = alife_nas_tiny:no_such_factory
"""


def distribution(root: Path, name: str, points: str) -> Path:
    """A distribution ``name`` 0.0 installed into ``root`` with these entry points; returns root."""
    info = root / f"{name}-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(points)
    return root


@pytest.fixture
def tiny_dir(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(PLUGIN, root / PLUGIN.name)
    return distribution(root, "alife_nas_tiny", TINY_POINTS)


@pytest.fixture
def broken_dir(tiny_dir):
    return distribution(tiny_dir, "alife_nas_broken", BROKEN_POINTS)


def install(monkeypatch, root):
    """Put ``root`` on this interpreter's path and make the registries read their groups again."""
    monkeypatch.syspath_prepend(str(root))  # also invalidates the import caches
    STRATEGIES.reload()
    EXECUTORS.reload()


@pytest.fixture(autouse=True)
def _forget_plugins():
    yield
    sys.modules.pop("alife_nas_tiny", None)
    STRATEGIES.reload()  # the path is restored by now: back to what the environment has
    EXECUTORS.reload()


def subprocess_env(root):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def test_the_contract_and_the_registries_sit_low_and_evolution_keeps_only_its_rules():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    names = {f"alife_nas.{m}" for m in modules}
    # the contract speaks of genomes and of what a child inherits (pure, search-space layer)
    assert imports_of(PACKAGE / "contract.py", names) <= {"alife_nas.genome", "alife_nas.inheritance"}
    assert imports_of(PACKAGE / "registry.py", names) <= {"alife_nas.genome"}
    from alife_nas import evolution

    assert not {"EvalRequest", "Evaluator", "SampleEvaluator", "FitnessStats", "mean_fitness"} & set(evolution.__all__)
    assert not (PACKAGE / "strategies" / "_base.py").exists()
    for cls in BUILTIN:
        check_strategy(cls.name, cls)


def test_an_entry_point_strategy_is_listed_after_the_built_ins_and_runs_a_search(tmp_path, monkeypatch, tiny_dir):
    install(monkeypatch, tiny_dir)
    assert list(STRATEGIES)[:len(BUILTIN)] == [cls.name for cls in BUILTIN] and "tiny" in STRATEGIES
    config = SearchConfig.from_options(strategy="tiny", tiny_batch=3, filters=[8, 16])
    assert config.method.tiny_batch == 3 and config.method.filters == (8, 16)
    run_search(tmp_path / "run", strategy="tiny", steps=2, filters=[8, 16])
    with RunStore.open(tmp_path / "run", readonly=True) as store:
        assert store.config.strategy == "tiny" and store.steps_done == 2
        assert 1 <= len(store.evaluations()) <= 6  # 2 genomes a step; a repeat of a genome is a cache hit


def test_an_entry_point_executor_is_chosen_by_name(tmp_path, monkeypatch, tiny_dir):
    install(monkeypatch, tiny_dir)
    import alife_nas_tiny

    assert "serial-again" in EXECUTORS and list(EXECUTORS)[:3] == ["serial", "local", "ray"]
    executor = make_executor(SearchConfig.from_options(executor="serial-again"), score=lambda g, s: {"fitness": 0.5})
    assert executor.slots == 1 and alife_nas_tiny.serial_again.made == 1
    run_search(tmp_path / "run", executor="serial-again", lattice=2, steps=1)
    assert alife_nas_tiny.serial_again.made == 2


def test_a_broken_plugin_is_left_out_with_one_line_naming_it(monkeypatch, caplog, broken_dir):
    install(monkeypatch, broken_dir)
    assert STRATEGIES["neuralfinder"] is BUILTIN[0]  # a built-in needs no plugin read
    assert not caplog.records
    names = list(STRATEGIES)
    assert "tiny" in names and not {"missing", "not-a-strategy", "misnamed"} & set(names)
    assert STRATEGIES["random"] is RandomSearch  # a plugin never replaces a built-in
    assert "broken" not in EXECUTORS
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 and all("\n" not in line and "Traceback" not in line for line in lines)
    for name in ("missing", "not-a-strategy", "random", "misnamed", "broken"):
        (line,) = [line for line in lines if f"plugin '{name}'" in line]
        assert line.startswith("alife-nas: warning:") and "alife-nas-broken 0.0" in line, line
    assert any("No module named 'alife_nas_no_such_module'" in line for line in lines)
    list(STRATEGIES)
    assert len(caplog.records) == 5  # read once


def test_importing_alife_nas_reads_no_plugin_and_a_broken_one_never_gives_a_traceback(broken_dir):
    code = ("import sys, alife_nas\nfrom alife_nas.config import SearchConfig\nSearchConfig()\n"
            "print('alife_nas_tiny' in sys.modules)")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=subprocess_env(broken_dir), check=True)
    assert quiet.stdout.split() == ["False"] and quiet.stderr == ""
    shown = subprocess.run([sys.executable, "-m", "alife_nas", "evolve", "--help"], capture_output=True, text=True,
                           env=subprocess_env(broken_dir), check=False)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    warnings = shown.stderr.splitlines()
    assert len(warnings) == 4 and all(w.startswith("alife-nas: warning: strategy plugin") for w in warnings)


# about 15 s: a real search on digits (4 one-epoch trainings of tiny networks)
@pytest.mark.slow
def test_an_outside_strategy_runs_through_the_command_line(tmp_path, tiny_dir):
    env = subprocess_env(tiny_dir)
    run_dir = tmp_path / "run"
    args = ["evolve", "--out", str(run_dir), "--strategy", "tiny", "--dataset", "digits", "--max-epochs", "1",
            "--filters", "8,16", "--steps", "1", "--device", "cpu", "--progress", "lines"]
    done = subprocess.run([sys.executable, "-m", "alife_nas", *args], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    status = subprocess.run([sys.executable, "-m", "alife_nas", "status", str(run_dir), "--json"],
                            capture_output=True, text=True, env=env, check=True)
    info = json.loads(status.stdout)
    assert info["strategy"] == "tiny" and info["steps_done"] == 1, info
    with RunStore.open(run_dir, readonly=True) as store:
        fitness = [e.fitness for e in store.evaluations()]
    assert len(fitness) >= 2 and max(fitness) > 0.2  # trained: better than chance on 10 classes
    wrong = subprocess.run([sys.executable, "-m", "alife_nas", "evolve", "--out", str(tmp_path / "x"),
                            "--strategy", "nope"], capture_output=True, text=True, env=env, check=False)
    assert wrong.returncode == 2 and "tiny" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_public_names_still_include_the_registry():
    assert alife_nas.STRATEGIES is STRATEGIES
