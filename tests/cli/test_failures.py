"""Failures say why (issue 19): the log line of a failed training, ``status`` (text and JSON) and
``export --failures`` name each failure's kind and reason.

Real runs on digits with a small ``--max-params`` cap: the networks over it fail as ``too_large``
before anything is built, so failures cost nothing and the rest train for one epoch.
"""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.cli.run import Reporter
from alife_nas.contract import EvalRequest
from alife_nas.genome import parse_genome
from alife_nas.store import Evaluation, RunStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores

#: A 2×2 lattice, 1 epoch; 16-filter networks fit under 600,000 parameters, most with an unpooled 32 do not.
MIXED = ["--lattice", "2", "--steps", "1", "--filters", "16,32", "--max-epochs", "1", "--max-params", "600000",
         "--device", "cpu", "--seed", "1", "--progress", "lines", "--force"]
#: Every digits network has more than 2,000 parameters: every training fails, none is even built.
ALL_FAIL = ["--lattice", "2", "--steps", "1", "--max-epochs", "1", "--max-params", "2000", "--device", "cpu",
            "--progress", "lines", "--force"]

FAILED_LINE = re.compile(r"^  \S+ (\S+) -> failed: too_large \(network has [\d,]+ parameters, more than the cap "
                         r"of (600,000|2,000) \(max_params\)\)$")
SUCCESS_LINE = re.compile(r"^  \S+ \S+ -> \d\.\d{4} \(1 epochs\)$")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A finished run where some trainings failed and some succeeded, and its log."""
    run_dir = tmp_path_factory.mktemp("runs") / "mixed"
    result = invoke("evolve", "--out", run_dir, *MIXED)
    assert result.exit_code == 0, result.output
    return run_dir, result.output


def test_a_failed_training_s_log_line_says_its_kind_and_reason(mixed):
    run_dir, log = mixed
    training_lines = [line for line in log.splitlines() if line.startswith("  ") and " -> " in line]
    failed = [m for m in map(FAILED_LINE.match, training_lines) if m]
    succeeded = [line for line in training_lines if SUCCESS_LINE.match(line)]
    assert failed and succeeded, log  # the cap splits this run
    assert len(failed) + len(succeeded) == len(training_lines), log  # every line is one or the other
    assert "0.0000 (0 epochs)" not in log
    with RunStore.open(run_dir, readonly=True) as store:
        stored = {ev.genome for ev in store.evaluations() if ev.failure_kind == "too_large"}
    assert {m.group(1) for m in failed} == stored


def test_status_counts_failures_by_kind_with_an_example(mixed):
    run_dir, _ = mixed
    info = json.loads(invoke("status", run_dir, "--json").output)
    with RunStore.open(run_dir, readonly=True) as store:
        failed = [ev for ev in store.evaluations() if ev.failure is not None]
    assert info["failures"] == len(failed) > 0  # the total is kept
    first = failed[0]
    assert info["failures_by_kind"] == {"too_large": {"count": len(failed), "example": first.failure,
                                                      "genome": first.genome}}
    text = invoke("status", run_dir).output
    lines = text.splitlines()
    assert f"  failures {len(failed)}  " in lines[1]  # the totals line as it was
    assert lines[2] == f"failures {len(failed)}: too_large {len(failed)} (e.g. {first.genome}: {first.failure})"


def test_status_of_a_run_without_failures_shows_no_failure_line(tmp_path):
    from tests.conftest import run_search

    run_search(tmp_path / "ok", lattice=2, steps=1)
    assert json.loads(invoke("status", tmp_path / "ok", "--json").output)["failures_by_kind"] == {}
    text = invoke("status", tmp_path / "ok").output
    assert "  failures 0  " in text and "failures 0:" not in text and "e.g." not in text


def test_export_failures_lists_each_failed_training_as_markdown_or_json(mixed, tmp_path):
    run_dir, _ = mixed
    with RunStore.open(run_dir, readonly=True) as store:
        failed = [ev for ev in store.evaluations() if ev.failure is not None]
    rows = json.loads(invoke("export", run_dir, "--failures", "--format", "json").output)
    assert [(r["step"], r["index"], r["genome"], r["kind"], r["reason"]) for r in rows] == [
        (ev.step, ev.index, ev.genome, ev.failure_kind, ev.failure) for ev in failed]
    assert all(r["sample"] == 0 and r["operator"] for r in rows)

    table = invoke("export", run_dir, "--failures").output.splitlines()  # markdown, the default format
    assert table[0] == "| Step | Index | Operator | Kind | Architecture | Reason |"
    body = [line for line in table[2:] if line.startswith("| ")]
    assert len(body) == len(failed)
    for line, ev in zip(body, failed):
        assert line.startswith(f"| {ev.step} | {ev.index} | ") and f"| too\\_large | `{ev.genome}` | " in line
        assert line.endswith(" (max\\_params) |")  # the reason, escaped as Markdown text

    out = tmp_path / "failures.json"
    result = invoke("export", run_dir, "--failures", "--format", "json", "--out", out)
    assert result.exit_code == 0 and result.output == f"wrote {len(failed)} failed trainings (json) to {out}\n"
    assert json.loads(out.read_text()) == rows
    refused = invoke("export", run_dir, "--failures", "--format", "json", "--out", out)
    assert refused.exit_code == 2 and "already exists; add --force" in refused.output
    assert invoke("export", run_dir, "--failures", "--format", "json", "--out", out, "--force").exit_code == 0


@pytest.mark.parametrize("args, needle", [
    (["--format", "paper"], "--failures lists the failed trainings as json or markdown, not --format paper"),
    (["--format", "pytorch"], "not --format pytorch"),
    (["--retrain"], "--retrain does not apply to --failures"),
])
def test_export_failures_refusals_are_one_line(mixed, args, needle):
    result = invoke("export", mixed[0], "--failures", *args)
    assert result.exit_code == 2 and needle in result.output and len(result.output.strip().splitlines()) == 1


def test_a_run_where_every_training_failed_says_why_everywhere(tmp_path):
    run_dir = tmp_path / "none"
    result = invoke("evolve", "--out", run_dir, *ALL_FAIL)
    assert result.exit_code == 0, result.output
    training_lines = [line for line in result.output.splitlines() if line.startswith("  ") and " -> " in line]
    assert training_lines and all(FAILED_LINE.match(line) for line in training_lines), result.output
    done = next(line for line in result.output.splitlines() if line.startswith("done: "))
    assert "; no training succeeded: too_large " in done and "(e.g. " in done  # the last line says why

    info = json.loads(invoke("status", run_dir, "--json").output)
    assert set(info["failures_by_kind"]) == {"too_large"}
    assert info["failures_by_kind"]["too_large"]["count"] == info["failures"] == info["trainings"]
    text = invoke("status", run_dir).output
    assert f"no training succeeded yet ({info['failures']} failed)" in text
    assert f"failures {info['failures']}: too_large {info['failures']} (e.g. " in text

    # nothing to rank, but the failures export
    assert invoke("export", run_dir).exit_code == 2
    rows = json.loads(invoke("export", run_dir, "--failures", "--format", "json").output)
    assert len(rows) == info["failures"] and {r["kind"] for r in rows} == {"too_large"}


def test_export_failures_of_a_run_without_failures_is_an_empty_list(tmp_path):
    from tests.conftest import run_search

    run_search(tmp_path / "ok", lattice=2, steps=1)
    assert json.loads(invoke("export", tmp_path / "ok", "--failures", "--format", "json").output) == []
    table = invoke("export", tmp_path / "ok", "--failures").output.splitlines()
    assert table[2] == "| – | – | – | – | – | – |"


def _failed(genome, reason, kind, step=1, index=2):
    return Evaluation(order=5, genome=genome, fitness=0.0, step=step, index=index, failure=reason, failure_kind=kind)


def test_the_log_line_shortens_a_long_reason_and_marks_a_replayed_failure(capsys):
    reporter = Reporter("run", steps=3, bar=False, lines=True, replayable={(1, 2, 0)}, tick=None)
    long = "RuntimeError: " + "x" * 1000 + "\nsecond line"
    reporter.on_result(EvalRequest(parse_genome("64-M"), 2, "self"), _failed("64-M", long, "error"), False)
    line = capsys.readouterr().out.rstrip("\n")
    assert "\n" not in line and len(line) < 240  # the reason's two ends (about 120 characters) and its length
    assert line.startswith("  self 64-M -> failed: error (RuntimeError: xxx") and "x second line (1,026 characters)" in line
    assert line.endswith("; replayed: trained before the restart)")

    reporter.on_result(EvalRequest(parse_genome("16"), 0, "init"), _failed("16", "custom reason", None, 0, 0), False)
    assert capsys.readouterr().out == "  init 16 -> failed: unknown (custom reason)\n"  # stored without a kind
    reporter.close()
