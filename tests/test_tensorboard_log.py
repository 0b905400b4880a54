"""The TensorBoard log of a run, read back with TensorBoard's own event reader (the extra, in .[dev])."""
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from alife_nas.config import SearchConfig
from alife_nas.search import Search
from alife_nas.store import RunStore
from alife_nas.tensorboard_log import (
    FITNESS_METRIC,
    LOG_DIR,
    TensorBoardLog,
    TensorBoardMissing,
    check_available,
    training_run_name,
)
from tests.conftest import fake_score, make_search


def curve_score(genome, seed):
    """fake_score with a per-epoch validation curve that ends at the fitness."""
    result = fake_score(genome, seed)
    result["history"] = [result["fitness"] / 2, result["fitness"] * 0.9, result["fitness"]]
    return result


def read(path):
    acc = EventAccumulator(str(path), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def run_logged(search, every=2):
    """Run ``search`` to its end with a TensorBoard log; returns the summaries it passed on."""
    summaries = []
    log = TensorBoardLog(search.store.run_dir, search.store, every=every)

    def on_step(s):
        summaries.append(s)
        log.on_step(s)

    try:
        search.run(on_step=on_step, on_result=log.on_result)
    finally:
        log.close()
    return summaries


def test_scalars_images_curves_and_hparams_read_back(tmp_path):
    with make_search(tmp_path / "run", curve_score, lattice=3, steps=3, seed=1) as search:
        summaries = run_logged(search, every=2)
        evaluations = search.store.evaluations()
    root = read(tmp_path / "run" / LOG_DIR)
    best = root.Scalars("fitness/best")
    assert [e.step for e in best] == [0, 1, 2, 3]
    assert [e.value for e in best] == pytest.approx([s.best_fitness for s in summaries])
    assert [e.value for e in root.Scalars("fitness/worst")] == pytest.approx([s.worst for s in summaries])
    assert [e.value for e in root.Scalars("search/trainings")] == [s.trainings for s in summaries]
    images = root.Images("lattice/fitness")
    assert [i.step for i in images] == [0, 2, 3]  # every 2 steps, and the last
    assert images[0].width > 100 and images[0].encoded_image_string[:4] == b"\x89PNG"

    runs = sorted(p.name for p in (tmp_path / "run" / LOG_DIR / "trainings").iterdir())
    assert len(runs) == len(evaluations) == summaries[-1].trainings
    ev = evaluations[4]
    one = read(tmp_path / "run" / LOG_DIR / training_run_name(ev.order, ev.genome))
    curve = one.Scalars("val_accuracy")
    assert [e.step for e in curve] == [1, 2, 3] and [e.value for e in curve] == pytest.approx(list(ev.history))
    assert one.Scalars(FITNESS_METRIC)[0].value == pytest.approx(ev.fitness)
    content = one.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["genome"].string_value == ev.genome
    assert start.hparams["params"].number_value == ev.params and start.hparams["epochs"].number_value == ev.epochs
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {h.name for h in experiment.hparam_infos} >= {"genome", "params", "flops", "epochs"}
    assert [m.name.tag for m in experiment.metric_infos] == [FITNESS_METRIC]


def test_resume_appends_without_logging_anything_twice(tmp_path):
    run_dir = tmp_path / "run"
    with make_search(run_dir, curve_score, lattice=3, steps=2, seed=2) as search:
        run_logged(search)
    with Search.open(run_dir, score=curve_score, steps=4) as search:
        run_logged(search)
        evaluations = search.store.evaluations()
        log = TensorBoardLog(run_dir, search.store)  # a training replayed after a crash is not logged again
        before = sorted(p.name for p in (run_dir / LOG_DIR / "trainings").rglob("*"))
        log.on_result(None, evaluations[0], False)
        log.close()
        assert sorted(p.name for p in (run_dir / LOG_DIR / "trainings").rglob("*")) == before
    root = read(run_dir / LOG_DIR)
    assert [e.step for e in root.Scalars("fitness/best")] == [0, 1, 2, 3, 4]
    assert len(list((run_dir / LOG_DIR / "trainings").iterdir())) == len(evaluations)


def test_a_strategy_without_a_lattice_logs_no_image(tmp_path):
    with make_search(tmp_path / "run", curve_score, strategy="random", steps=3) as search:
        run_logged(search, every=1)
    root = read(tmp_path / "run" / LOG_DIR)
    assert root.Tags()["images"] == [] and len(root.Scalars("fitness/mean")) == 4


def test_history_is_stored_and_logged_for_real_trainings(tmp_path):
    """A real tiny training through Search: each stored evaluation keeps one value per epoch."""
    config = SearchConfig.from_options(lattice=2, steps=0, filters=[16, 32], max_epochs=2, preset="fast",
                                       device="cpu", seed=4)
    with Search.create(tmp_path / "run", config) as search:
        run_logged(search)
    with RunStore.open(tmp_path / "run") as store:
        evaluations = store.evaluations()
    assert evaluations
    for ev in evaluations:
        assert ev.epochs == 2 and len(ev.history) == 2 and all(0 <= v <= 1 for v in ev.history)
        assert max(ev.history) == pytest.approx(ev.fitness)
        curve = read(tmp_path / "run" / LOG_DIR / training_run_name(ev.order, ev.genome)).Scalars("val_accuracy")
        assert [e.value for e in curve] == pytest.approx(list(ev.history))


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(TensorBoardMissing) as info:
        check_available()
    message = str(info.value)
    assert 'pip install "alife-nas[tensorboard]"' in message and "\n" not in message
