"""A run as one self-contained web page: the data it shows, and the page written to disk.

:func:`report_data` reads a run store into one JSON-safe dict (settings and totals, the lattice
per step, every training in order, the top-K with the command that re-trains each, the Pareto
fronts, the validation curves of the best, the lineage of the best, the failures);
:func:`report_page` puts one or several of them into the page template
(``report_page.html``, inline JavaScript and SVG, nothing fetched from the network) and
:func:`write_report` writes ``index.html`` whole. ``alife-nas serve`` (:mod:`alife_nas.serve`)
serves the same page live. :class:`ReportWriter` rewrites a run's page while it runs
(``--report-every``). No torch, no matplotlib: the page draws its own charts.
"""
from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from alife_nas.config import DataConfig, SearchConfig
from alife_nas.export import _json_safe, failure_rows, safe_target, top_architectures
from alife_nas.files import TOP_K, describe_os_error, write_atomically
from alife_nas.genome import parse_genome
from alife_nas.options import specs
from alife_nas.pareto import pareto_front
from alife_nas.search import read_status, train_images
from alife_nas.settings import PRESETS, TrainSettings
from alife_nas.store import Evaluation, RunStore

__all__ = ["report_data", "report_page", "write_report", "embed_json", "lineage", "retrain_command",
           "ReportWriter", "report_target", "REPORT_DIR", "PAGE_NAME", "CURVES_SHOWN", "LINEAGE_MOST"]

#: The folder inside a run directory that ``--report-every`` writes the page to.
REPORT_DIR = "report"
PAGE_NAME = "index.html"
#: Validation curves shown: those of the best genomes.
CURVES_SHOWN = 5
#: Most nodes a lineage graph shows (the nearest ancestors first): a page stays readable.
LINEAGE_MOST = 120
#: Most failed trainings listed one by one (every kind is counted in full above them).
FAILURES_LISTED = 200


def report_data(store: RunStore, *, name: str | None = None, since: int | None = None,
                after: int | None = None, top: int = TOP_K) -> dict[str, Any]:
    """Everything the page shows of one run, JSON-safe.

    ``since``/``after`` make it incremental for the live page: only steps with a number above
    ``since`` and trainings with an order above ``after`` (the rest is always whole: it is
    small, and a new training can change any of it). Reads only.
    """
    status = read_status(store)
    evaluations = store.evaluations()
    config = store.config
    steps = [{"step": row.step, "outcome": (row.record or {}).get("outcome"), "trainings": row.trainings,
              "cache_hits": row.cache_hits, "wall_time": row.wall_time, "finished_at": row.finished_at,
              "genomes": None if not row.lattice else row.lattice.get("genomes"),
              "fitness": None if not row.lattice else row.lattice.get("fitness")}
             for row in store.step_rows() if since is None or row.step > since]
    trainings = [{"order": ev.order, "genome": ev.genome, "fitness": ev.fitness, "failed": ev.failure is not None,
                  "step": ev.step, "params": ev.params, "flops": ev.flops, "epochs": ev.epochs,
                  "operator": ev.operator} for ev in evaluations if after is None or ev.order > after]
    fitness = store.genome_fitness()
    rows = top_architectures(evaluations, k=top, fitness=fitness)
    run_dir = str(store.run_dir)
    for row in rows:
        row["command"] = retrain_command(row["genome"], config, f"models/rank_{row['rank']}")
    histories = {ev.genome: list(ev.history) for ev in evaluations if ev.history}
    curves = [{"rank": row["rank"], "genome": row["genome"], "history": histories[row["genome"]]}
              for row in rows[:CURVES_SHOWN] if row["genome"] in histories]
    best = store.best_evaluation()
    return _json_safe({
        "name": name or Path(run_dir).name or run_dir,
        "run_dir": run_dir,
        "status": status,
        "train_images": train_images(store.dataset_info),
        "train_flops_total": status["train_flops"],
        "steps": steps,
        "trainings": trainings,
        "top": rows,
        "export_command": " ".join(shlex.quote(part) for part in
                                   ["alife-nas", "export", run_dir, "--top", str(top), "--format", "pytorch",
                                    "--retrain", "--out", "models"]),
        "pareto": pareto_points(evaluations, fitness),
        "curves": curves,
        "lineage": lineage(evaluations, best) if best is not None else {"nodes": [], "edges": [], "cut": False},
        "failures": {"by_kind": status["failures_by_kind"],
                     "rows": failure_rows(store.failed_trainings())[:FAILURES_LISTED],
                     "total": status["failures"]},
        "notice": store.notice or None,
    })


def pareto_points(evaluations: Sequence[Evaluation], fitness: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One point per distinct genome (its best usable training; a genome trained several times at
    its mean) with params, FLOPs and fitness, and the genomes on the Pareto fronts of fitness
    against params and against FLOPs (:func:`alife_nas.pareto.pareto_front`)."""
    rows = top_architectures(evaluations, k=max(1, len(evaluations)), fitness=fitness) if evaluations else []
    points = [{"genome": r["genome"], "fitness": r["fitness"], "params": r["params"], "flops": r["flops"]}
              for r in rows]
    values = [p["fitness"] for p in points]
    return {"points": points,
            "front_params": [points[i]["genome"] for i in pareto_front([p["params"] for p in points], values)],
            "front_flops": [points[i]["genome"] for i in pareto_front([p["flops"] for p in points], values)]}


def lineage(evaluations: Sequence[Evaluation], best: Evaluation, most: int = LINEAGE_MOST) -> dict[str, Any]:
    """The ancestry of ``best`` as a graph: a node per training (genome, operator, step, fitness,
    order) and an edge parent -> child for each stored parent.

    A parent genome is the training of that genome made before the child (the highest ``order``
    below the child's): the one the search had in its lattice when it bred the child. A parent
    with no such training (a run stored without it) is a node of its own with no order.
    ``generation`` is the longest path from the node down to ``best`` (0), so a graph laid out by
    generation reads top-down from the oldest ancestor. At most ``most`` nodes (``cut`` says so).
    """
    by_genome: dict[str, list[Evaluation]] = {}
    for ev in sorted(evaluations, key=lambda e: e.order):
        by_genome.setdefault(_canonical(ev.genome), []).append(ev)

    def before(genome: str, order: int) -> Evaluation | None:
        found = None
        for ev in by_genome.get(_canonical(genome), []):
            if ev.order < order:
                found = ev
        return found

    nodes: dict[str, dict[str, Any]] = {}
    edges: list[list[str]] = []
    generation: dict[str, int] = {}
    cut = False

    def node(ev: Evaluation | None, genome: str) -> str:
        key = f"t{ev.order}" if ev is not None else f"g{genome}"
        if key not in nodes:
            nodes[key] = {"id": key, "genome": genome if ev is None else ev.genome,
                          "operator": None if ev is None else ev.operator, "step": None if ev is None else ev.step,
                          "fitness": None if ev is None else ev.fitness, "order": None if ev is None else ev.order,
                          "failed": False if ev is None else ev.failure is not None}
        return key

    root = node(best, best.genome)
    generation[root] = 0
    queue: list[tuple[str, Evaluation | None]] = [(root, best)]
    expanded: set[str] = set()
    while queue:
        key, ev = queue.pop(0)
        if key in expanded or ev is None:
            continue
        expanded.add(key)
        for parent in dict.fromkeys(ev.parents):  # a parent named twice (self-crossover) is one edge
            found = before(parent, ev.order)
            if found is not None and found.order == ev.order:
                continue
            if len(nodes) >= most and (f"t{found.order}" if found else f"g{parent}") not in nodes:
                cut = True
                continue
            parent_key = node(found, parent)
            if [parent_key, key] not in edges:
                edges.append([parent_key, key])
            generation[parent_key] = max(generation.get(parent_key, 0), generation[key] + 1)
            queue.append((parent_key, found))
    _longest_paths(generation, edges)
    for key, value in nodes.items():
        value["generation"] = generation.get(key, 0)
    return {"nodes": list(nodes.values()), "edges": edges, "cut": cut}


def _longest_paths(generation: dict[str, int], edges: list[list[str]]) -> None:
    """Make every parent's generation above each of its children's (breadth-first order alone can
    leave a parent reached early by a short path at the level of a child reached later)."""
    for _ in range(len(generation) + 1):
        changed = False
        for parent, child in edges:
            if generation[parent] < generation[child] + 1:
                generation[parent] = generation[child] + 1
                changed = True
        if not changed:
            return


def _canonical(genome: str) -> str:
    try:
        return str(parse_genome(genome))
    except Exception:  # noqa: BLE001 - a genome this version cannot read is still a name
        return genome


# --- the command that re-trains a genome with the run's recipe ---------------------------------------
def _flag(name: str, value: Any) -> list[str]:
    """The ``alife-nas train`` flag(s) that give option ``name`` the value ``value``."""
    spec = specs(TrainSettings).get(name) or specs(DataConfig)[name]
    dashed = name.replace("_", "-")
    if spec.kind == "bool" or isinstance(value, bool):
        return [f"--{dashed}" if value else f"--no-{dashed}"]
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return [f"--{dashed}", str(value)]


def retrain_command(genome: str, config: SearchConfig, save: str | None = None) -> str:
    """``alife-nas train GENOME ...`` with the run's data split and training recipe: its data set,
    every data option not at the default, its preset and every training knob that differs from
    the preset's. With ``save``, the trained network is kept there (``--save``)."""
    parts = ["alife-nas", "train", genome]
    defaults = DataConfig()
    for name in specs(DataConfig):
        value = getattr(config.data, name)
        if name == "dataset" or (value != getattr(defaults, name) and value is not None):
            parts += _flag(name, value)
    training = config.training
    preset = PRESETS.get(training.preset, PRESETS["fast"])
    parts += ["--preset", training.preset]
    for name in specs(TrainSettings):
        value = getattr(training, name)
        if name != "preset" and value != getattr(preset, name) and value is not None:
            parts += _flag(name, value)
    if save:
        parts += ["--save", save]
    return " ".join(shlex.quote(str(p)) for p in parts)


# --- the page -------------------------------------------------------------------------------------
def embed_json(data: Any) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``: every ``<``,
    ``>`` and ``&`` escaped (``\\u003c`` ...), so no value (a genome, a path, a class name) can
    close the tag or open a comment; non-finite numbers become null."""
    text = json.dumps(_json_safe(data), allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _template() -> str:
    return resources.files("alife_nas").joinpath("report_page.html").read_text(encoding="utf-8")


def report_page(runs: Sequence[Mapping[str, Any]], *, live: bool = False, token: str | None = None) -> str:
    """The page for ``runs`` (each a :func:`report_data` dict): static, or live (polling
    ``alife-nas serve``'s API with ``token``)."""
    payload = {"mode": "live" if live else "static", "token": token, "runs": list(runs),
               "generated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    page = _template()
    marker = "/*REPORT_DATA*/"
    if page.count(marker) != 1:
        raise RuntimeError("report_page.html must hold the data marker exactly once")
    return page.replace(marker, embed_json(payload))


def write_report(run_dirs: Iterable[str | Path], out: str | Path) -> Path:
    """Write the page of ``run_dirs`` (one run, or a comparison of several) to ``out/index.html``,
    whole or not at all; returns its path. The runs are opened read-only.

    A folder that is no run raises :class:`~alife_nas.store.RunStoreError`; an unusable ``out``
    (a file, a symbolic link out of a run, a run's own folder) ValueError, before anything is read.
    """
    run_dirs = [Path(r) for r in run_dirs]
    target = report_target(run_dirs, out)
    runs = []
    for run_dir in run_dirs:
        with RunStore.open(run_dir, readonly=True) as store:
            runs.append(report_data(store, name=_name(run_dir, run_dirs)))
    target.mkdir(parents=True, exist_ok=True)
    return write_atomically(target / PAGE_NAME, report_page(runs))


def report_target(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """The real folder to write the page of ``run_dirs`` into, or a one-line ValueError: not a
    file, not a run directory itself, not through a symbolic link out of a run
    (:func:`alife_nas.export.safe_target`; an existing ``index.html`` is replaced)."""
    if not run_dirs:
        raise ValueError("give at least one run directory")
    target = Path(out)
    for run_dir in run_dirs:
        target = safe_target(out, run_dir, folder=True, files=[PAGE_NAME], force=True)
    return target


def _name(run_dir: Path, all_dirs: Sequence[Path]) -> str:
    """A run's name on the page: its folder's name, or its path when two runs share one."""
    name = run_dir.resolve().name
    return str(run_dir) if sum(d.resolve().name == name for d in all_dirs) > 1 else name


class ReportWriter:
    """An observer of a running search (``--report-every N``): rewrites ``RUN_DIR/report/index.html``
    every ``every`` steps and when the run ends. A page that cannot be written (full disk) is one
    line through ``warn`` (once until a write succeeds again); the run goes on."""

    def __init__(self, run_dir: str | Path, store: RunStore, every: int,
                 warn: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        self.store = store
        self.every = every
        self.warn = warn
        self.path = self.run_dir / REPORT_DIR / PAGE_NAME
        self._failing = False

    def write(self) -> Path | None:
        try:
            (self.run_dir / REPORT_DIR).mkdir(exist_ok=True)
            page = report_page([report_data(self.store, name=self.run_dir.resolve().name)])
            write_atomically(self.path, page)
        except OSError as exc:
            if not self._failing:
                self.warn(f"warning: report not written: {describe_os_error(exc)} (the run goes on)")
            self._failing = True
            return None
        except Exception as exc:  # noqa: BLE001 - a page is never worth the run
            if not self._failing:
                self.warn(f"warning: report not written: {type(exc).__name__}: {exc} (the run goes on)")
            self._failing = True
            return None
        self._failing = False
        return self.path

    def on_step(self, summary: Any) -> None:
        if summary.step % self.every == 0:
            self.write()

    def on_result(self, *args: Any) -> None:
        """Trainings are shown when their step ends."""

    def close(self) -> None:
        self.write()
