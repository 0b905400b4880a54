"""alife_nas.report and ``alife-nas report``: the data a run's page shows, the page in a real browser,
and ``--report-every``."""
from __future__ import annotations

import json
import re
import shlex

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.cli._common import given
from alife_nas.config import SearchConfig
from alife_nas.export import top_architectures
from alife_nas.pareto import pareto_front
from alife_nas.report import (
    PAGE_NAME,
    REPORT_DIR,
    ReportWriter,
    embed_json,
    lineage,
    report_data,
    report_page,
    retrain_command,
    write_report,
)
from alife_nas.search import Search, read_status
from alife_nas.store import RunStore
from tests.browser import Page, chromium
from tests.conftest import fake_score, run_search, tree_state

TINY_REAL = {"dataset": "digits", "lattice": 3, "steps": 4, "filters": [16, 32], "max_epochs": 3, "device": "cpu",
             "seed": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    """Two finished runs with the cheap fitness (the data set recorded: training FLOPs are known)."""
    base = tmp_path_factory.mktemp("runs")
    a = run_search(base / "alpha", data=digits, lattice=3, steps=5, seed=1, dataset="digits")
    b = run_search(base / "beta", data=digits, lattice=3, steps=3, seed=2, dataset="digits")
    return a, b


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, digits, one_torch_thread):
    """A small run with the real trainer: 3x3 lattice, 16/32 filters, 3 epochs (about 5 s)."""
    run_dir = tmp_path_factory.mktemp("real") / "real"
    with Search.create(run_dir, SearchConfig.from_options(**TINY_REAL), data=digits) as search:
        search.run()
    return run_dir


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def data_of(run_dir):
    with RunStore.open(run_dir, readonly=True) as store:
        return report_data(store), read_status(store), store.evaluations(), store.step_rows(), store


# --- the data -------------------------------------------------------------------------------------
def test_report_data_is_what_the_store_holds(runs):
    with RunStore.open(runs[0], readonly=True) as store:
        data = report_data(store)
        status, evaluations, rows = read_status(store), store.evaluations(), store.step_rows()
        top = top_architectures(evaluations, fitness=store.genome_fitness())
    json.dumps(data, allow_nan=False)  # JSON-safe
    assert data["name"] == "alpha" and data["status"] == json.loads(json.dumps(status))
    assert [s["step"] for s in data["steps"]] == [r.step for r in rows]
    assert [s["genomes"] for s in data["steps"]] == [r.lattice["genomes"] for r in rows]
    assert [t["order"] for t in data["trainings"]] == [ev.order for ev in evaluations]
    assert [r["genome"] for r in data["top"]] == [r["genome"] for r in top]
    assert data["train_images"] > 0 and data["status"]["train_flops"] > 0
    points = data["pareto"]["points"]
    assert {p["genome"] for p in points} == {ev.genome for ev in evaluations if not ev.failure}
    front = pareto_front([p["params"] for p in points], [p["fitness"] for p in points])
    assert data["pareto"]["front_params"] == [points[i]["genome"] for i in front]


def test_report_data_since_and_after_give_only_what_is_new(runs):
    with RunStore.open(runs[0], readonly=True) as store:
        full, part = report_data(store), report_data(store, since=3, after=10)
    assert [s["step"] for s in part["steps"]] == [s["step"] for s in full["steps"] if s["step"] > 3]
    assert [t["order"] for t in part["trainings"]] == [t["order"] for t in full["trainings"] if t["order"] > 10]
    assert part["status"] == full["status"] and part["top"] == full["top"]


def test_embedded_json_cannot_break_out_of_its_script_tag():
    hostile = {"genome": "</script><script>alert(1)</script>", "path": "<!-- x -->", "cls": "a&b>\u2028"}
    text = embed_json(hostile)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == hostile
    page = report_page([])
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data)["mode"] == "static"


def test_the_retrain_command_gives_the_run_s_recipe(runs):
    config = SearchConfig.from_options(dataset="digits", max_epochs=2, val_size=0.3, batchnorm=True, head="gap",
                                       preset="paper", lr=0.02, filters=[16, 32])
    command = retrain_command("32-M-64", config, "models/rank_1")
    args = shlex.split(command)
    assert args[:3] == ["alife-nas", "train", "32-M-64"] and args[-2:] == ["--save", "models/rank_1"]
    ctx = main.commands["train"].make_context("train", args[2:])
    options = {k: v for k, v in ctx.params.items() if k not in ("genome", "seed", "download", "as_json", "save",
                                                                  "onnx", "force")}
    again = SearchConfig.from_options(**given(options))
    assert again.training == config.training and again.data == config.data


def test_lineage_follows_the_stored_parents_on_a_real_run(real_run):
    with RunStore.open(real_run, readonly=True) as store:
        evaluations = store.evaluations()
        best = store.best_evaluation()
        graph = report_data(store)["lineage"]
    assert graph == json.loads(json.dumps(lineage(evaluations, best)))
    by_order = {ev.order: ev for ev in evaluations}
    nodes = {n["id"]: n for n in graph["nodes"]}
    root = graph["nodes"][0]
    assert root["order"] == best.order and root["genome"] == best.genome and root["generation"] == 0
    assert all(ev.history for ev in evaluations if not ev.failure)  # real trainings: a curve each
    parents_of: dict[str, set] = {}
    for parent, child in graph["edges"]:
        parents_of.setdefault(child, set()).add(nodes[parent]["genome"])
        p, c = nodes[parent], nodes[child]
        assert p["generation"] > c["generation"]
        if p["order"] is not None:  # the parent's training came before the child's, and is of that genome
            assert p["order"] < c["order"] and by_order[p["order"]].genome == p["genome"]
            assert not any(ev.genome == p["genome"] and p["order"] < ev.order < c["order"] for ev in evaluations)
    for node in graph["nodes"]:  # every stored parent of every node is in the graph
        if node["order"] is not None and not graph["cut"]:
            assert parents_of.get(node["id"], set()) == set(by_order[node["order"]].parents)
    for node in graph["nodes"]:
        if node["order"] is not None:
            ev = by_order[node["order"]]
            assert (node["operator"], node["step"], node["fitness"]) == (ev.operator, ev.step, ev.fitness)


# --- the command ----------------------------------------------------------------------------------
def test_report_command_writes_one_page_and_refuses_mistakes(runs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "page" / PAGE_NAME).read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert [p.name for p in (tmp_path / "page").iterdir()] == [PAGE_NAME]  # no temporary file left
    before = tree_state(tmp_path)
    (tmp_path / "file").write_text("x")
    for args, message in [([str(tmp_path)], "is not an alife_nas run directory"),
                          ([str(runs[0]), "--out", str(tmp_path / "file")], "--out"),
                          ([str(runs[0]), str(runs[1])], "give --out"),
                          ([str(runs[0]), "--out", str(runs[0])], "run directory itself")]:
        result = runner.invoke(main, ["report", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "file").unlink()
    assert tree_state(tmp_path) == before


def test_report_of_one_run_defaults_to_its_report_folder(tmp_path):
    run = run_search(tmp_path / "run", lattice=2, steps=1)
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / REPORT_DIR / PAGE_NAME).is_file()



def test_report_every_rewrites_the_page_while_the_run_goes_on(tmp_path, fake_trainer, monkeypatch):
    written = []
    original = ReportWriter.write
    monkeypatch.setattr(ReportWriter, "write", lambda self: written.append(self.store.steps_done) or original(self))
    runner = CliRunner()
    result = runner.invoke(main, ["evolve", "--out", str(tmp_path / "r"), "--lattice", "3", "--steps", "5",
                                  "--report-every", "2"])
    assert result.exit_code == 0, result.output
    assert written == [0, 2, 4, 5]  # every 2 steps, and at the end
    page = (tmp_path / "r" / REPORT_DIR / PAGE_NAME).read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert data["runs"][0]["status"]["steps_done"] == 5
    with RunStore.open(tmp_path / "r") as store:  # the page is no part of the run
        assert store.config == SearchConfig.from_options(lattice=3, steps=5, device="cpu")


def test_a_page_that_cannot_be_written_never_stops_the_run(tmp_path, fake_trainer, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / REPORT_DIR / PAGE_NAME))

    monkeypatch.setattr("alife_nas.report.write_atomically", full)
    result = CliRunner().invoke(main, ["evolve", "--out", str(tmp_path / "r"), "--lattice", "3", "--steps", "3",
                                       "--report-every", "1"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "report not written" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert "done: 3 steps" in result.output


# --- the page in a browser ------------------------------------------------------------------------
def cells(page):
    return page.eval_on_selector_all(".lattice .cell", "els => els.map(e => [e.dataset.genome, Number(e.dataset.fitness), e.title])")


def test_the_page_shows_the_run_in_a_real_browser(runs, tmp_path, browser):
    out = write_report([runs[0]], tmp_path / "page")
    data, status, evaluations, rows, _ = data_of(runs[0])
    with Page(browser) as p:
        page = p.page
        page.goto(out.as_uri())
        page.wait_for_selector(".lattice .cell")
        last = rows[-1].lattice
        shown = cells(page)
        assert [g for g, _, _ in shown] == [g for row in last["genomes"] for g in row]
        assert [f for _, f, _ in shown] == pytest.approx([f for row in last["fitness"] for f in row])
        assert all(title.startswith(g + "\n") for g, _, title in shown)  # the genome on hover
        # the slider goes back to the initial lattice
        page.eval_on_selector(".step-slider", "s => { s.value = 0; s.dispatchEvent(new Event('input')); }")
        assert page.text_content(".step-label").startswith("step 0")
        assert [g for g, _, _ in cells(page)] == [g for row in rows[0].lattice["genomes"] for g in row]
        assert [g for g, _, _ in cells(page)] != [g for row in last["genomes"] for g in row]
        # top table, with the re-train command
        top = page.eval_on_selector_all(".top-table tbody tr", "rs => rs.map(r => [r.dataset.genome, r.querySelector('.fitness').textContent, r.querySelector('code.cmd').textContent])")
        assert [t[0] for t in top] == [r["genome"] for r in data["top"]]
        assert [t[1] for t in top] == [f"{r['fitness']:.4f}" for r in data["top"]]
        assert top[0][2].startswith(f"alife-nas train {data['top'][0]['genome']} --dataset digits")
        # Pareto plot: every genome a point, the front marked
        front = page.eval_on_selector_all(".pareto-plot circle.front", "cs => cs.map(c => c.dataset.genome)")
        assert sorted(front) == sorted(data["pareto"]["front_params"]) and front
        points = page.eval_on_selector_all(".pareto-plot circle.point", "cs => cs.length")
        assert points == len(data["pareto"]["points"])
        page.select_option(".size-select", "flops")
        front = page.eval_on_selector_all(".pareto-plot circle.front", "cs => cs.map(c => c.dataset.genome)")
        assert sorted(front) == sorted(data["pareto"]["front_flops"])
        # lineage of the best
        nodes = page.eval_on_selector_all(".lineage-graph g.node", "gs => gs.map(g => g.dataset.genome)")
        assert nodes == [n["genome"] for n in data["lineage"]["nodes"]] and nodes[0] == status["best"]["genome"]
        assert page.eval_on_selector_all(".lineage-graph path.edge", "es => es.length") == len(data["lineage"]["edges"])
        # best so far, against each axis
        for axis in ("trainings", "epochs", "flops"):
            page.select_option(".axis-select", axis)
            assert page.eval_on_selector_all(".chart.best path.series", "ps => ps.length") == 1
        settings = page.text_content(".settings")
        assert f"{status['trainings']} (cache hits {status['cache_hits']}" in settings
        assert status["best"]["genome"] in settings
        assert page.text_content(".failures") == "no failed training"
        assert p.errors == []


def test_a_real_run_s_page_shows_its_curves_and_failures(real_run, tmp_path, browser):
    out = write_report([real_run], tmp_path / "page")
    data, *_ = data_of(real_run)
    with Page(browser) as p:
        p.page.goto(out.as_uri())
        p.page.wait_for_selector(".curves-plot")
        names = p.page.eval_on_selector_all(".curves-plot path.series", "ps => ps.map(p => p.dataset.name)")
        assert len(names) == len(data["curves"]) >= 1
        nodes = p.page.eval_on_selector_all(".lineage-graph g.node", "gs => gs.map(g => g.dataset.genome)")
        assert nodes == [n["genome"] for n in data["lineage"]["nodes"]]
        assert p.errors == []


def test_several_runs_make_one_comparison_page(runs, tmp_path, browser):
    out = write_report(runs, tmp_path / "page")
    with Page(browser) as p:
        p.page.goto(out.as_uri())
        p.page.wait_for_selector(".compare-table")
        rows = p.page.eval_on_selector_all(".compare-table tbody tr", "rs => rs.map(r => [r.dataset.run, r.querySelector('.best-fitness').textContent])")
        expected = []
        for run in runs:
            with RunStore.open(run, readonly=True) as store:
                expected.append([run.name, f"{store.best_evaluation().fitness:.4f}"])
        assert rows == expected
        assert p.page.eval_on_selector_all(".compare-plot path.series", "ps => ps.length") == 2
        assert p.page.eval_on_selector_all("section.run", "s => s.map(x => x.dataset.run)") == ["alpha", "beta"]
        assert p.errors == []


def test_a_hostile_run_name_is_shown_as_text(tmp_path, browser):
    name = "x</script><!--<img src=x onerror=alert(1)>&amp;\"'"
    run = run_search(tmp_path / name, lattice=2, steps=1)
    out = write_report([run], tmp_path / "page")
    html = out.read_text()
    assert "</script><!--" not in html.replace('id="report-data">', "")  # only escaped inside the JSON
    assert html.count("</script>") == 2
    with Page(browser) as p:
        p.page.goto(out.as_uri())
        p.page.wait_for_selector("section.run")
        assert p.page.text_content("section.run h2") == "Run " + run.name
        assert p.page.text_content(".settings code") == str(run)
        assert p.page.eval_on_selector_all("img", "i => i.length") == 0
        assert p.errors == []


def test_the_page_of_a_run_without_steps_says_so(tmp_path, browser):
    with Search.create(tmp_path / "empty", SearchConfig.from_options(lattice=2, steps=1), score=fake_score):
        pass
    out = write_report([tmp_path / "empty"], tmp_path / "page")
    with Page(browser) as p:
        p.page.goto(out.as_uri())
        p.page.wait_for_selector("section.run")
        assert "no step finished yet" in p.page.text_content(".lattice-view")
        assert p.errors == []



def failing_score(genome, seed):
    """fake_score, except that genomes of three or more layers fail (a score function's error)."""
    if len(genome) >= 3:
        raise RuntimeError(f"<b>too deep</b> & {genome}")
    return fake_score(genome, seed)


def test_a_run_without_a_lattice_and_with_failures(tmp_path, browser):
    run = run_search(tmp_path / "rs", score=failing_score, strategy="random", budget=30, seed=4)
    with RunStore.open(run, readonly=True) as store:
        by_kind, failures = store.failures_by_kind(), store.totals()["failures"]
    assert failures > 0
    out = write_report([run], tmp_path / "page")
    with Page(browser) as p:
        p.page.goto(out.as_uri())
        p.page.wait_for_selector("section.run")
        assert "keeps no lattice" in p.page.text_content(".lattice-view")
        kinds = p.page.eval_on_selector_all(".failure-kinds tbody tr", "rs => rs.map(r => [r.dataset.kind, Number(r.children[1].textContent), r.children[3].textContent])")
        assert kinds == [[k, e["count"], e["example"]] for k, e in by_kind.items()]
        assert "<b>too deep</b>" in kinds[0][2] and p.page.eval_on_selector_all("b", "b => b.length") == 0
        assert p.errors == []


def test_the_report_and_the_server_load_no_torch_nor_matplotlib():
    import subprocess
    import sys

    code = ("import sys, alife_nas.report, alife_nas.serve, alife_nas.cli.report; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
