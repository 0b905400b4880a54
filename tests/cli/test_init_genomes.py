"""``--init-genomes FILE`` on the command line: the file read, mistakes refused with their line,
the genomes stored with the run so that ``status`` and ``resume`` need no file."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from alife_nas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores

#: A 2×2 lattice trained for one epoch on digits.
TINY = ["--lattice", "2", "--steps", "0", "--filters", "8,16", "--max-epochs", "1", "--device", "cpu",
        "--progress", "lines"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and all(n in lines[0] for n in needles), result.output
    assert "Traceback" not in result.output


def test_a_file_of_known_genomes_seeds_the_lattice_and_is_stored_with_the_run(tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("# known architectures\n\n32-M-16   # a comment after a compact genome\n"
                     "('rank-1', '0.9', [('conv', [('nb_filter', 8)])])\n")
    result = invoke("evolve", "--out", tmp_path / "run", "--init-genomes", seeds, *TINY)
    assert result.exit_code == 0, result.output
    assert "init 32-M-16 ->" in result.output and "init 8 ->" in result.output
    seeds.unlink()  # status and resume need no file
    info = json.loads(invoke("status", tmp_path / "run", "--json").output)
    assert info["config"]["init_genomes"] == ["32-M-16", "8"] and info["init_trainings"] == 4
    assert [cell["genome"] for cell in info["lattice"][0]] == ["32-M-16", "8"]
    resumed = invoke("resume", tmp_path / "run", "--steps", "1")
    assert resumed.exit_code == 0 and "step 1/1" in resumed.output, resumed.output
    # the run's stored config feeds a new run as it is: the genomes come with it
    (tmp_path / "config.json").write_text(json.dumps(info["config"]))
    again = invoke("evolve", "--out", tmp_path / "again", "--config", tmp_path / "config.json", "--steps", "0",
                   "--device", "cpu")
    assert again.exit_code == 0 and "init 32-M-16 ->" in again.output, again.output


@pytest.mark.parametrize("text, needles", [
    ("16-M\n\n# fine so far\n16-X\n", ["--init-genomes", "line 4:", "'X'"]),
    ("[('conv', [('nb_filter', 0)])]\n", ["line 1:"]),
    ("# only comments\n\n", ["holds no genome"]),
    ("16\n32\n16-M\n32-M\n8\n", ["5 genomes for a 2×2 lattice of 4 cells", "at most 4"]),
])
def test_mistakes_are_one_line_naming_the_line_and_nothing_is_written(tmp_path, text, needles):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(text)
    one_line_error(invoke("evolve", "--out", tmp_path / "run", "--init-genomes", seeds, *TINY), *needles)
    assert not (tmp_path / "run").exists()


def test_a_missing_file_and_other_genomes_on_resume_are_refused(tmp_path):
    one_line_error(invoke("evolve", "--out", tmp_path / "run", "--init-genomes", tmp_path / "nothere.txt", *TINY),
                   "cannot read", "nothere.txt")
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("16-M\n")
    assert invoke("evolve", "--out", tmp_path / "run", "--init-genomes", seeds, *TINY).exit_code == 0
    seeds.write_text("8-M\n")  # changed since: it cannot change the run
    one_line_error(invoke("resume", tmp_path / "run", "--steps", "1", "--init-genomes", seeds),
                   "would change the run's results", "init_genomes")
