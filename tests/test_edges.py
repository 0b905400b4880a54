"""Input at the edges, through the real command line: every hostile value is one line on stderr
with exit code 2 and leaves nothing behind; the largest accepted values run for real."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.genome import MAX_FILTERS
from alife_nas.store import RunStore
from tests.conftest import tree_state

#: Options that keep a run tiny should a refusal ever fail (real trainings on digits, seconds).
TINY = {"lattice": "2", "filters": "8,16", "max-epochs": "1", "steps": "0", "device": "cpu"}


def refused(tmp_path: Path, args: list[str], words: str, given: tuple[str, ...] = ()) -> None:
    """``evolve`` with ``args`` (and TINY, except the options in ``given``) is one error line naming
    the problem, and writes no run directory."""
    run_dir = tmp_path / "run"
    small = [part for key, value in TINY.items() if key not in given for part in (f"--{key}", value)]
    result = CliRunner().invoke(main, ["evolve", "--out", str(run_dir), *args, *small])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and len(lines[0]) < 300, result.output
    assert "Traceback" not in result.output
    assert not run_dir.exists()


@pytest.mark.parametrize("args, words", [
    (["--ratio", "nan"], "ratio must be a finite number, got nan"),
    (["--ratio", "inf"], "ratio must be a finite number, got inf"),
    (["--val-size", "nan"], "val_size must be a finite number"),
    (["--lr", "inf"], "lr"),
    (["--ray", "local", "--gpus-per-trial", "nan"], "gpus_per_trial must be a finite number"),
    (["--filters", "16,1e20"], "--filters must be comma-separated whole numbers, got '16,1e20'"),
    (["--filters", "16," + "9" * 5000], f"filter counts must be whole numbers in 1..{MAX_FILTERS}, got a 5,000-digit"),
    (["--filters", f"16,{MAX_FILTERS + 1}"], f"filter counts must be whole numbers in 1..{MAX_FILTERS}"),
    (["--filters", "16,\uff13\uff12"], "--filters must be comma-separated whole numbers"),
    (["--lattice", "100000"], "lattice must be between 2 and 256, got 100000"),
    (["--lattice", "4", "--radius", "1000000"], "radius must be between 1 and 4, got 1000000"),
    (["--seed", "-1"], "seed must be between 0 and 9223372036854775807, got -1"),
    (["--seed", str(2**63)], "seed must be between 0 and 9223372036854775807"),
    (["--steps", "-3"], "steps must be between 0"),
    (["--device", "cuda:" + "9" * 5000], "device must be auto, cpu, cuda or cuda:N"),
    (["--ray", "5"], "ray must be local, auto, HOST:PORT or ray://HOST:PORT, got '5'"),
    (["--ray", "ray://head"], "ray must be local, auto, HOST:PORT or ray://HOST:PORT, got 'ray://head'"),
    (["--ray", "head:70000"], "ray must be local, auto, HOST:PORT or ray://HOST:PORT, got 'head:70000'"),
    # a worker's device is checked here, not by the worker once the run is written
    (["--workers", "2", "--devices", "cpu,cuda:9999"], "device cuda:9999"),
])
def test_hostile_options_are_one_line_and_write_nothing(tmp_path, args, words):
    given = tuple(a[2:] for a in args if a.startswith("--"))
    refused(tmp_path, args, words, given)


@pytest.mark.parametrize("name, content, words", [
    ("table.toml", "lattice = {a = 1}\n", "lattice must be a single value"),
    ("seed.toml", "seed = {a = 1}\n", "seed must be a single value"),
    ("null.json", '{"ratio": null}', "ratio cannot be null"),
    ("float.toml", "lattice = 3.9\n", "'3.9' is not a valid integer"),
    ("negative.toml", "steps = -3\n", "steps must be between 0"),
    ("nan.toml", "ratio = nan\n", "ratio must be a finite number, got nan"),
    ("nan.json", '{"ratio": NaN}', "ratio must be a finite number, got nan"),
    ("inf.json", '{"val_size": Infinity}', "val_size must be a finite number, got inf"),
    ("huge.toml", "filters = [16, 1e20]\n", "--filters must be comma-separated whole numbers"),
    ("bool.toml", "lattice = true\n", "lattice must be a single value"),
    ("list.toml", "filters = [16, true]\n", "filters must be a list of numbers"),
    ("nul.json", '{"data_dir": "a\\u0000b"}', "data_dir must not contain a NUL character"),
    ("seed.json", '{"seed": -1}', "seed must be between 0"),
    ("ray.json", '{"ray": 5}', "ray must be local, auto, HOST:PORT or ray://HOST:PORT, got '5'"),
])
def test_hostile_config_files_are_one_line_naming_the_key(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    key = content.strip('{"\n ').split('"')[0].split("=")[0].strip()  # the one option the file sets
    refused(tmp_path, ["--config", str(path)], words, given=(key.replace("_", "-"),))


def test_unreadable_config_files_are_one_line(tmp_path):
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(bytes(range(128, 256)) * 4)
    refused(tmp_path, ["--config", str(garbage)], "cannot read config file")
    huge = tmp_path / "huge.toml"
    huge.write_text("# padding\n" * 110_000)
    refused(tmp_path, ["--config", str(huge)], "is larger than 1,000,000 bytes")


@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_run_directory_name_is_refused(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["evolve", "--out", out, "--steps", "0"])
    assert result.exit_code == 2 and "--out must name a run directory" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert tree_state(tmp_path) == {}


def test_the_largest_seed_and_a_radius_of_the_whole_lattice_run_and_resume(tmp_path):
    """Real trainings on digits at the edges: seed 2**63-1 and radius = L are stored and resumed."""
    run_dir = tmp_path / "run"
    tiny = ["--lattice", "2", "--radius", "2", "--filters", "8,16", "--max-epochs", "1", "--preset", "fast",
            "--device", "cpu", "--seed", str(2**63 - 1)]
    result = CliRunner().invoke(main, ["evolve", "--out", str(run_dir), *tiny, "--steps", "1"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["resume", str(run_dir), "--steps", "2"])
    assert result.exit_code == 0, result.output
    with RunStore.open(run_dir) as store:
        assert store.steps_done == 2 and store.config.seed == 2**63 - 1 and store.config.method.radius == 2
        assert all(e.fitness > 0 for e in store.evaluations())  # really trained, none failed
    info = json.loads(CliRunner().invoke(main, ["status", str(run_dir), "--json"]).output)
    assert info["seed"] == 2**63 - 1


def test_a_genome_with_unicode_whitespace_trains_as_its_normal_form():
    """The whitespace rule on the real trainer: a non-breaking space and an em space are ignored."""
    result = CliRunner().invoke(main, ["train", "8\u00a0-\u2003M", "--dataset", "digits", "--max-epochs", "1",
                                       "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["genome"] == "8-M" and info["val_accuracy"] > 0


def test_a_hostile_genome_is_one_short_line():
    long = "-".join(["16", "32"] * 5000 + ["M"])  # 10,001 layers: one more than a genome text may have
    for genome in [long, "(" * 100_000, "16-" + "9" * 5000, "32\u200b-M"]:
        result = CliRunner().invoke(main, ["train", genome, "--dataset", "digits", "--device", "cpu"])
        assert result.exit_code == 2, result.output[:300]
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) < 250 and "Traceback" not in result.output, lines[0][:300]


@pytest.mark.parametrize("args", [["--ray", "5"], ["--config", "ray.json"]], ids=["--ray 5", "ray = 5 in --config"])
def test_evolve_ray_5_leaves_nothing_and_the_corrected_command_runs(tmp_path, monkeypatch, args):
    """The refusal comes before any folder is made: not the run's, not its parents; a folder that
    was there, empty, stays as it was; and the corrected command is not refused as 'already holds a run'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ray.json").write_text('{"ray": 5}')
    (tmp_path / "empty").mkdir()
    before = tree_state(tmp_path)
    for out in ["runs/a/run", "empty"]:
        result = CliRunner().invoke(main, ["evolve", "--out", out, *args, "--lattice", "2", "--steps", "0"])
        assert result.exit_code == 2 and "ray must be local, auto, HOST:PORT or ray://HOST:PORT" in result.output
        assert not (tmp_path / "runs").exists() and not any((tmp_path / "empty").iterdir())
        assert tree_state(tmp_path) == before
    small = [part for key, value in TINY.items() for part in (f"--{key}", value)]
    result = CliRunner().invoke(main, ["evolve", "--out", "empty", *small])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "empty folder"])
def test_a_creation_refused_after_the_run_was_made_takes_it_away(tmp_path, monkeypatch, existing):
    """Search.create, when the executor cannot start (a Ray cluster that refuses, workers that cannot
    start), removes the run it made, and the folders it made for it; a folder found empty stays."""
    from alife_nas import search as search_module
    from alife_nas.config import SearchConfig
    from alife_nas.executors import ExecutorError
    from alife_nas.search import Search
    from tests.conftest import fake_score

    def refuse(*args, **kwargs):
        raise ExecutorError("cannot start or join Ray at 'head:6379': no cluster there")

    monkeypatch.setattr(search_module, "make_executor", refuse)
    run_dir = tmp_path / "runs" / "a" / "run"
    if existing:
        run_dir.mkdir(parents=True)
        (tmp_path / "runs" / "notes.txt").write_text("mine")
    before = tree_state(tmp_path)
    with pytest.raises(ExecutorError, match="no cluster there"):
        Search.create(run_dir, SearchConfig.from_options(lattice=2, steps=0), score=fake_score)
    assert tree_state(tmp_path) == before
    assert run_dir.is_dir() == existing and (tmp_path / "runs").exists() == existing
    monkeypatch.undo()
    with Search.create(run_dir, SearchConfig.from_options(lattice=2, steps=0), score=fake_score) as search:
        search.run()
