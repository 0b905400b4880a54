"""Top-K export: ranking, the four formats, round trips, standalone PyTorch files, re-training."""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas import export as ex
from alife_nas import pytorch_source as ps
from alife_nas.genome import parse_genome, parse_tuple_form
from alife_nas.retraining import Retraining
from alife_nas.store import Evaluation
from alife_nas.training import TrainResult


def ev(order: int, genome: str, fitness: float, params: int = 1000, failure: str | None = None, **more) -> Evaluation:
    return Evaluation(order=order, genome=genome, fitness=fitness, failure=failure, params=params, flops=10 * params,
                      epochs=7, best_epoch=4, step=order // 3, index=0, operator="self", parents=("32",),
                      position=(0, 1), **more)


EVALS = [
    ev(1, "32", 0.80),
    ev(2, "32-M", 0.90, params=500),
    ev(3, "64-M", 0.90, params=400),  # ties 32-M on fitness, smaller: ranks first
    ev(4, "16-M", 0.90, params=400),  # ties 64-M on fitness and size, found later: after it
    ev(5, "32-m", 0.85, params=500),  # the same genome as 32-M (canonical form), worse this time
    ev(6, "512-512", 0.99, params=10**6, failure="too many parameters"),  # failures never ranked
    ev(7, "32", 0.83),  # 32 trained again, better
]


# --- ranking --------------------------------------------------------------------------------
def test_distinct_genomes_best_fitness_deterministic_ties() -> None:
    rows = ex.top_architectures(EVALS, k=15)
    assert [(r["rank"], r["genome"], r["fitness"]) for r in rows] == [
        (1, "64-M", 0.90), (2, "16-M", 0.90), (3, "32-M", 0.90), (4, "32", 0.83)]
    assert rows[2]["order"] == 2 and rows[2]["trainings"] == 2  # best of the two trainings of 32-M
    assert rows[3]["order"] == 7
    first = rows[0]
    assert (first["convs"], first["pools"], first["layers"]) == (1, 1, 2)
    assert {"params", "flops", "epochs", "step", "operator", "parents", "order"} <= set(first)


def test_k_larger_than_available_and_k_smaller() -> None:
    assert len(ex.top_architectures(EVALS, k=1000)) == 4
    assert [r["genome"] for r in ex.top_architectures(EVALS, k=2)] == ["64-M", "16-M"]
    assert ex.top_architectures([], k=5) == []
    assert ex.top_architectures([ev(1, "32", 0.0, failure="oom")], k=5) == []
    with pytest.raises(ValueError):
        ex.top_architectures(EVALS, k=0)


def test_ranking_does_not_depend_on_input_order() -> None:
    assert ex.top_architectures(EVALS[::-1]) == ex.top_architectures(EVALS)


# --- text formats -------------------------------------------------------------------------------
def test_json_round_trip() -> None:
    rows = ex.top_architectures(EVALS)
    text = ex.to_json(rows)
    data = json.loads(text)
    assert isinstance(data, list) and {"rank", "genome", "fitness", "params"} <= set(data[0])
    back = ex.read_json(text)
    assert [(rank, fit, str(g)) for rank, fit, g in back] == [(r["rank"], r["fitness"], r["genome"]) for r in rows]


def test_paper_round_trip_through_the_tuple_form_parser() -> None:
    rows = ex.top_architectures(EVALS)
    text = ex.to_paper(rows)
    lines = text.strip().splitlines()
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows):
        name, score, genome = parse_tuple_form(line)
        assert name == f"rank-{row['rank']}" and score == pytest.approx(row["fitness"])
        assert str(genome) == row["genome"]
    assert lines[0] == "('rank-1', '0.900000', [('conv', [('nb_filter', 64)]), ('maxp', [('pool_size', 2)])])"
    assert [str(g) for _, _, g in ex.read_paper(text + "\n\n")] == [r["genome"] for r in rows]


def test_markdown_table() -> None:
    rows = ex.top_architectures(EVALS)
    md = ex.to_markdown(rows, title="Top")
    table = [l for l in md.splitlines() if l.startswith("|")]
    assert len(table) == 2 + len(rows)
    assert "Test acc." not in table[0] and "Params" in table[0] and "FLOPs" in table[0]
    assert table[2].startswith("| 1 | `64-M` | 90.00% | 400 | 4.00k | 1 | 1 |")
    rows[0]["test_accuracy"] = 0.8765
    md = ex.to_markdown(rows)
    assert "Test acc." in md and "87.65%" in md
    assert ex.to_markdown([]).count("\n|") >= 2  # an empty table, not a crash


# --- standalone PyTorch ---------------------------------------------------------------------------
CASES = [
    ("32-192-192-M-128-192-M-128-192-192-M-128-192-M", (3, 32, 32), 10),  # the seed's best model
    ("16-M-M-M-M-32", (1, 8, 8), 10),  # pools on a 1x1 map are skipped
    ("M-M-M-M", (1, 8, 8), 3),  # no conv at all
    ("64", (3, 5, 7), 100),  # odd, non-square input
]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pytorch_matches_the_builder(tmp_path) -> None:
    from alife_nas.model import build_model, count_params

    for i, (genome, shape, classes) in enumerate(CASES):
        path = tmp_path / f"net_{i}.py"
        path.write_text(ex.pytorch_source(genome, shape, classes, f"case-{i}"))
        module = _load(path)
        ours = build_model(parse_genome(genome), shape, classes)
        theirs = module.build()
        assert count_params(theirs) == count_params(ours) == module.PARAMS
        assert {k: v.shape for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
        theirs.load_state_dict(ours.state_dict())  # weights trained by alife_nas load as they are


@pytest.mark.slow  # a fresh interpreter per file: ~3.5 s
def test_generated_pytorch_needs_no_alife_nas(tmp_path) -> None:
    paths = []
    for i, (genome, shape, classes) in enumerate(CASES):
        path = tmp_path / ex.pytorch_filename(f"rank-{i + 1}")
        path.write_text(ex.pytorch_source(genome, shape, classes, f"rank-{i + 1}", fitness=0.9))
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported == {"torch"}
        paths.append(path)
    # Run every file as a script in an isolated interpreter where alife_nas cannot be imported.
    driver = textwrap.dedent(
        """
        import importlib.abc, runpy, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "alife_nas":
                    raise ImportError("alife_nas is blocked in this test")
        sys.meta_path.insert(0, Block())  # first in line, so even an editable install's finder is bypassed
        for path in sys.argv[1:]:
            runpy.run_path(path, run_name="__main__")
        try:
            import alife_nas
        except ImportError:
            print("blocked")
        """
    )
    proc = subprocess.run([sys.executable, "-I", "-c", driver, *map(str, paths)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    from alife_nas.model import describe_genome

    assert out[-1] == "blocked"
    for line, (genome, shape, classes) in zip(out, CASES):
        expected = describe_genome(parse_genome(genome), shape, classes).params
        assert line == f"{genome}: {expected} parameters, output shape (1, {classes})"


def test_pytorch_filename() -> None:
    assert ex.pytorch_filename("rank-1") == "rank_1.py"
    assert ex.pytorch_filename("3 best!") == "model_3_best.py"


# --- writing ----------------------------------------------------------------------------------
def test_write_export_every_format(tmp_path) -> None:
    rows = ex.top_architectures(EVALS)
    for fmt in ("json", "paper", "markdown"):
        [path] = ex.write_export(rows, fmt, tmp_path / "sub" / f"top.{fmt}")
        assert path.read_text()
    written = ex.write_export(rows, "pytorch", tmp_path / "torch", input_shape=(1, 8, 8), num_classes=10)
    assert [p.name for p in written] == ["rank_1.py", "rank_2.py", "rank_3.py", "rank_4.py"]
    with pytest.raises(ValueError, match="folder"):
        ex.write_export(rows, "json", tmp_path / "torch")
    with pytest.raises(ValueError, match="is a file"):
        ex.write_export(rows, "pytorch", tmp_path / "sub" / "top.json", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="input shape"):
        ex.write_export(rows, "pytorch", tmp_path / "t2")
    with pytest.raises(ValueError, match="unknown export format"):
        ex.write_export(rows, "csv", tmp_path / "x.csv")


# --- re-training ------------------------------------------------------------------------------
def result(seed: int, test: float | None, failure: str | None = None) -> TrainResult:
    return TrainResult(genome="64-M", fitness=0.9, val_accuracy=0.9, test_accuracy=test, best_epoch=2, epochs=3,
                       train_time=1.5, images_per_sec=1.0, params=1, flops=1, effective_layers="64-M",
                       failure=failure, seed=seed)


def test_with_retraining_adds_the_mean_test_accuracy_and_keeps_the_ranking() -> None:
    rows = ex.top_architectures(EVALS)
    retraining = Retraining("64-M", (result(0, 0.8), result(1, None, "out of memory")))
    out = ex.with_retraining(rows[0], retraining)
    assert out["test_accuracy"] == pytest.approx(0.4)  # a failed re-training counts 0
    assert out["test_accuracies"] == [0.8, 0.0] and out["retrain_seeds"] == [0, 1] and out["retrain_epochs"] == [3, 3]
    assert out["retrain_failures"] == ["seed 1: out of memory"] and out["retrain_time"] == 3.0
    assert out["rank"] == 1 and out["genome"] == rows[0]["genome"]
    assert "test_accuracy" not in rows[0]  # inputs untouched
    assert json.loads(ex.to_json([out]))[0]["test_accuracy"] == pytest.approx(0.4)


def test_export_text_and_check_target(tmp_path) -> None:
    rows = ex.top_architectures([ev(1, "16-M", 0.5, params=10)])
    assert ex.export_text(rows, "json") == ex.to_json(rows) and ex.export_text(rows, "paper") == ex.to_paper(rows)
    assert ex.export_text(rows, "markdown", title="t") == ex.to_markdown(rows, title="t")
    with pytest.raises(ValueError, match="not a text export format"):
        ex.export_text(rows, "pytorch")
    (tmp_path / "file.py").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        ex.check_target("pytorch", tmp_path / "file.py")
    with pytest.raises(ValueError, match="is a folder"):
        ex.check_target("markdown", tmp_path)
    ex.check_target("pytorch", tmp_path / "new-folder")  # neither exists yet: fine
    ex.check_target("json", tmp_path / "new.json")


# --- where an export may write ----------------------------------------------------------------------
def make_run_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ex.RUN_FILES:
        (path / name).write_text(name)
    return path


def test_safe_target_never_writes_over_the_run_even_with_force(tmp_path) -> None:
    run = make_run_dir(tmp_path / "run")
    for name in ex.RUN_FILES:
        for force in (False, True):
            with pytest.raises(ValueError, match=f"run's own {name}"):
                ex.safe_target(run / name, run, folder=False, force=force)
    (tmp_path / "elsewhere.md").symlink_to(run / "run.sqlite")  # a link from outside into the run
    with pytest.raises(ValueError, match="run's own run.sqlite"):
        ex.safe_target(tmp_path / "elsewhere.md", run, folder=False, force=True)
    with pytest.raises(ValueError, match="run directory itself"):
        ex.safe_target(run, run, folder=True, files=["rank_1.py"])
    assert ex.safe_target(run / "top.md", run, folder=False) == (run / "top.md").resolve()


def test_safe_target_asks_for_force_and_refuses_empty_and_wrong_kinds(tmp_path) -> None:
    run = make_run_dir(tmp_path / "run")
    (tmp_path / "top.md").write_text("mine")
    with pytest.raises(ValueError, match="already exists; add --force"):
        ex.safe_target(tmp_path / "top.md", run, folder=False)
    assert ex.safe_target(tmp_path / "top.md", run, folder=False, force=True) == (tmp_path / "top.md").resolve()
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "rank_2.py").write_text("")
    with pytest.raises(ValueError, match="rank_2.py already exists"):
        ex.safe_target(tmp_path / "nets", run, folder=True, files=["rank_1.py", "rank_2.py"])
    ex.safe_target(tmp_path / "nets", run, folder=True, files=["rank_1.py", "rank_2.py"], force=True)
    ex.safe_target(tmp_path / "nets", run, folder=True, files=["rank_3.py"])  # an existing folder is fine
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="empty path"):
            ex.safe_target(empty, run, folder=False)
    with pytest.raises(ValueError, match="is a folder"):
        ex.safe_target(tmp_path / "nets", run, folder=False)
    with pytest.raises(ValueError, match="is a file"):
        ex.safe_target(tmp_path / "top.md", run, folder=True, files=["rank_1.py"])
    (tmp_path / "nets" / "rank_1.py").mkdir()
    with pytest.raises(ValueError, match="is a folder; it cannot be written"):
        ex.safe_target(tmp_path / "nets", run, folder=True, files=["rank_1.py"], force=True)
    assert ex.safe_target(tmp_path / "free", None, folder=True, files=["model.py"]) == (tmp_path / "free").resolve()


def test_safe_target_follows_no_link_out_of_the_run_directory(tmp_path) -> None:
    run = make_run_dir(tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "export-pytorch").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link out of the run directory"):
        ex.safe_target(run / "export-pytorch", run, folder=True, files=["rank_1.py"], force=True)
    (run / "top.md").symlink_to(outside / "top.md")
    with pytest.raises(ValueError, match="symbolic link out of the run directory"):
        ex.safe_target(run / "top.md", run, folder=False, force=True)
    (run / "nets").mkdir()
    (run / "nets" / "rank_1.py").symlink_to(outside / "victim.py")
    with pytest.raises(ValueError, match="symbolic link out of the run directory"):
        ex.safe_target(run / "nets", run, folder=True, files=["rank_1.py"], force=True)
    assert list(outside.iterdir()) == []
    inner = run / "inner-link"
    inner.symlink_to(run / "nets", target_is_directory=True)  # a link that stays inside is fine
    assert ex.safe_target(inner, run, folder=True, files=["rank_2.py"]) == (run / "nets").resolve()


# --- trained-model files ----------------------------------------------------------------------------
def test_model_files_and_model_shape() -> None:
    assert ex.model_files("rank-3", "pytorch") == ["rank_3.py"]
    assert ex.model_files("rank-3", "pytorch", trained=True) == ["rank_3.py", "rank_3.pt"]
    assert ex.model_files("rank-3", "onnx", trained=True) == ["rank_3.onnx"]
    with pytest.raises(ValueError, match="not a model export format"):
        ex.model_files("rank-3", "json")
    assert ex.model_shape({"input_shape": [1, 8, 8], "num_classes": 3, "classes": ["a", "b", "c"]}) == (
        (1, 8, 8), 3, ["a", "b", "c"])
    assert ex.model_shape({"input_shape": [3, 32, 32], "num_classes": 10, "classes": None})[2] is None
    for info, needle in [
        (None, "does not record"),
        ({"input_shape": [1, 8], "num_classes": 3}, "input shape"),
        ({"input_shape": [1, 8, "8"], "num_classes": 3}, "input shape"),
        ({"input_shape": [1, 8, 8], "num_classes": "x"}, "number of classes 'x'"),
        ({"input_shape": [1, 8, 8], "num_classes": True}, "number of classes"),
        ({"input_shape": [1, 8, 8], "num_classes": 3, "classes": ["a"]}, "class names"),
    ]:
        with pytest.raises(ValueError, match=needle):
            ex.model_shape(info)


def test_trained_source_embeds_the_card_and_checks_it() -> None:
    card = ex.ModelCard(classes=("cat", "dog"), mean=(1.5, 2.5, 3.5), scale=(255.0,) * 3, weights_file="rank_1.pt",
                        metadata={"genome": "16-M", "test_accuracy": 0.75, "seed": 1, "dataset": "pets",
                                  "val_accuracy": float("nan")})
    src = ex.pytorch_source("16-M", (3, 8, 8), 2, "rank-1", card=card)
    namespace: dict = {}
    exec(compile(src, "rank_1.py", "exec"), namespace)  # noqa: S102 - our own generated file
    assert namespace["CLASSES"] == ["cat", "dog"] and namespace["MEAN"] == (1.5, 2.5, 3.5)
    assert namespace["WEIGHTS"] == "rank_1.pt" and namespace["METADATA"]["test_accuracy"] == 0.75
    assert namespace["METADATA"]["val_accuracy"] is None  # not-a-number written as None
    assert {"load", "predict", "predict_proba", "normalize", "logits", "build"} <= set(namespace)
    assert "test accuracy 0.7500" in src and "seed 1" in src
    with pytest.raises(ValueError, match="does not fit"):
        ex.pytorch_source("16-M", (3, 8, 8), 10, "rank-1", card=card)
    assert "UNTRAINED" in ex.pytorch_source("16-M", (3, 8, 8), 2, "rank-1")


@given(st.text(max_size=30))
def test_any_name_gives_importable_files_with_one_stem(name: str) -> None:
    py, pt = ex.model_files(name, "pytorch", trained=True)
    [onnx] = ex.model_files(name, "onnx")
    stem = py[:-3]
    assert stem.isidentifier() and pt == stem + ".pt" and onnx == stem + ".onnx"


@given(st.text(max_size=60))
def test_any_text_becomes_a_docstring_literal_that_reads_back_exactly(text: str) -> None:
    """Whatever a name holds (quotes, backslashes, newlines, separators, surrogates), it stays data."""
    literal = ps._text_literal(text)
    module = compile(literal + "\nx = 1\n", "generated.py", "exec")  # a whole module: the literal is its docstring
    namespace: dict = {}
    exec(module, namespace)  # noqa: S102 - the point: nothing but the docstring and x exist afterwards
    assert namespace["__doc__"] == text and set(namespace) == {"__builtins__", "__doc__", "x"}


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_metadata_literals_are_plain_data(value) -> None:
    assert ast.literal_eval(ps._literal({"v": value})) == ps._plain({"v": value})
    assert ps._plain(Path("a/b")) == "a/b" and ps._plain(float("inf")) is None


# --- failed trainings (export --failures) --------------------------------------------------------
def test_failure_rows_keep_every_value_and_name_a_missing_kind_unknown() -> None:
    failed = [(0, ev(4, "512-512", 0.0, failure="network has 1,000,000 parameters", failure_kind="too_large")),
              (2, Evaluation(order=0, genome="32", fitness=0.0, step=3, index=1, failure="custom | reason"))]
    rows = ex.failure_rows(failed)
    assert rows == [
        {"step": 1, "index": 0, "sample": 0, "order": 4, "operator": "self", "genome": "512-512", "kind": "too_large",
         "reason": "network has 1,000,000 parameters", "params": 1000},
        {"step": 3, "index": 1, "sample": 2, "order": None, "operator": None, "genome": "32", "kind": "unknown",
         "reason": "custom | reason", "params": None}]
    assert json.loads(ex.failures_text(rows, "json")) == rows
    table = ex.failures_text(rows, "markdown").splitlines()
    assert table[0] == "| Step | Index | Sample | Operator | Kind | Architecture | Reason |"  # a further sample: its column
    assert table[2] == "| 1 | 0 | 0 | self | too\\_large | `512-512` | network has 1,000,000 parameters |"
    assert table[3] == "| 3 | 1 | 2 | – | unknown | `32` | custom \\| reason |"
    with pytest.raises(ValueError, match="json or markdown"):
        ex.failures_text(rows, "paper")


def test_hostile_failure_values_stay_data_in_both_formats() -> None:
    import re

    reason = "boom |x| `code` <script>alert(1)</script> [link](http://x) *em* _u_ & ~~s~~ \\\n| 9 | 9 |"
    rows = ex.failure_rows([(0, Evaluation(order=1, genome="32`|<b>", fitness=0.0, step=0, index=0,
                                           failure=reason, failure_kind="k|*"))])
    assert json.loads(ex.failures_text(rows, "json"))[0]["reason"] == reason  # exact, newline included
    lines = ex.failures_text(rows, "markdown").splitlines()
    row = lines[2]
    assert len([line for line in lines if line.startswith("|")]) == 3  # the newline started no row of its own
    assert row.startswith("| ") and row.endswith(" |")
    cells = re.split(r"(?<!\\) \| ", row[2:-2])  # the table's own separators: unescaped pipes
    assert len(cells) == 6 and cells[3] == "k\\|\\*" and cells[4] == "32\\`\\|\\<b\\>"
    assert cells[5].endswith("\\\\ \\| 9 \\| 9 \\|")  # the backslash and the pipes escaped
    assert "<script>" not in row and "\\<script\\>" in row


@given(st.text(max_size=40))
def test_any_text_is_one_markdown_cell_with_every_special_character_escaped(text: str) -> None:
    from alife_nas.genome import one_line

    cell = ex.markdown_text(text)
    assert "\n" not in cell and "\r" not in cell
    plain, i = [], 0
    while i < len(cell):  # read the cell back: a backslash escapes the next character
        if cell[i] == "\\":
            assert i + 1 < len(cell) and cell[i + 1] in "\\`*_[]<>|&~"
            plain.append(cell[i + 1])
            i += 2
        else:
            assert cell[i] not in "\\`*_[]<>|&~"
            plain.append(cell[i])
            i += 1
    assert "".join(plain) == one_line(text, None)


# --- Pareto front (export --pareto) ---------------------------------------------------------------
def sized(order: int, genome: str, fitness: float, params: int, flops: int) -> Evaluation:
    return dataclasses.replace(ev(order, genome, fitness, params=params), flops=flops)


FRONT_EVALS = EVALS + [
    sized(8, "16", 0.70, params=100, flops=5000),  # the smallest: on the front however weak
    sized(9, "16-16", 0.95, params=3000, flops=900),  # the best; few FLOPs, many parameters
    sized(10, "8", 0.60, params=200, flops=100),  # larger than 16 and worse: dominated by params, not by FLOPs
]


def test_pareto_front_by_params_keeps_the_run_ranks_best_first() -> None:
    rows = ex.pareto_architectures(FRONT_EVALS, by="params")
    top = {r["genome"]: r["rank"] for r in ex.top_architectures(FRONT_EVALS, k=100)}
    assert [r["genome"] for r in rows] == ["16-16", "64-M", "16"]  # 16-M ties 64-M and was found later
    assert [r["rank"] for r in rows] == [top[r["genome"]] for r in rows] == [1, 2, 6]
    assert all(r["fitness"] >= s["fitness"] and r["params"] >= s["params"] for r, s in zip(rows, rows[1:]))
    # no exported row is beaten on both by any usable genome of the run
    for r in rows:
        assert not any(o["params"] <= r["params"] and o["fitness"] >= r["fitness"]
                       and (o["params"], o["fitness"]) != (r["params"], r["fitness"])
                       for o in ex.top_architectures(FRONT_EVALS, k=100))


def test_pareto_front_by_flops_and_refusals() -> None:
    rows = ex.pareto_architectures(FRONT_EVALS, by="flops")
    assert [(r["genome"], r["flops"]) for r in rows] == [("16-16", 900), ("8", 100)]
    assert ex.pareto_architectures([], by="flops") == []
    assert ex.pareto_architectures([ev(1, "32", 0.0, failure="oom")]) == []  # failures left out
    with pytest.raises(ValueError, match="params or flops"):
        ex.pareto_architectures(FRONT_EVALS, by="depth")


def test_pareto_rows_in_every_text_format() -> None:
    rows = ex.pareto_architectures(FRONT_EVALS, by="params")
    title = "Pareto front: validation accuracy against parameters"
    assert ex.export_text(rows, "markdown", title=title).startswith(f"### {title}\n")
    paper = ex.export_text(rows, "paper", title=title)
    assert paper.startswith(f"# {title}\n")
    assert [(name, str(g)) for name, _, g in ex.read_paper(paper)] == [("rank-1", "16-16"), ("rank-2", "64-M"),
                                                                       ("rank-6", "16")]
    assert [(rank, str(g)) for rank, _, g in ex.read_json(ex.export_text(rows, "json"))] == [
        (1, "16-16"), (2, "64-M"), (6, "16")]
