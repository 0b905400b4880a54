"""The one re-training policy, with the real trainer on digits."""
import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.config import SearchConfig
from alife_nas.retraining import Retraining, make_trainer, retrain
from alife_nas.training import TrainResult


@pytest.fixture(scope="module")
def trainer():
    return make_trainer(SearchConfig.from_options(max_epochs=2, device="cpu"))


def test_mean_test_accuracy_over_seeds_0_to_k(trainer):
    got = retrain("16-M-32", trainer, seeds=2)
    direct = [trainer.train("16-M-32", seed=s, evaluate_test=True) for s in (0, 1)]
    assert got.seeds == [0, 1] and got.epochs == [2, 2] and not got.failures
    assert got.test_accuracies == [r.test_accuracy for r in direct]
    assert got.test_accuracy == pytest.approx(sum(r.test_accuracy for r in direct) / 2)
    assert got.test_accuracy > 0.3  # digits: well above chance (0.1) after two epochs


def test_a_failed_training_counts_zero(trainer):
    capped = make_trainer(SearchConfig.from_options(max_epochs=1, max_layers=2, device="cpu"), data=trainer.data)
    got = retrain("16-16-16", capped, seeds=1)
    assert got.test_accuracy == 0.0 and "cap of 2" in got.failures[0]


def test_the_train_command_uses_the_same_policy_and_defaults(trainer):
    result = CliRunner().invoke(main, ["train", "16-M-32", "--max-epochs", "2", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    import json

    reported = json.loads(result.output)
    assert reported["preset"] == SearchConfig().training.preset  # the search's default recipe
    assert reported["test_accuracy"] == retrain("16-M-32", trainer, seeds=1).test_accuracy


def test_retraining_keeps_the_best_seed_by_validation(trainer):
    done = retrain("8-M", trainer, seeds=2, keep_weights=True)
    best = max(done.results, key=lambda r: r.val_accuracy)  # max: the first seed of equals
    assert done.best is best and best.weights is not None
    assert [r.weights is None for r in done.results] == [r is not best for r in done.results]
    assert retrain("8-M", trainer, seeds=1).results[0].weights is None  # nothing kept unless asked


def _result(seed: int, val: float, failure: str | None = None) -> TrainResult:
    return TrainResult(genome="8-M", fitness=0.0 if failure else val, val_accuracy=val, test_accuracy=0.5,
                       best_epoch=1, epochs=1, train_time=0.1, images_per_sec=1.0, params=1, flops=1,
                       effective_layers="8-M", failure=failure, seed=seed)


def test_best_is_the_first_of_equal_seeds_by_validation_and_none_when_all_failed():
    a, b, c = _result(0, 0.8), _result(1, 0.8), _result(2, 0.9)
    assert Retraining("8-M", (a, b)).best is a
    assert Retraining("8-M", (a, c, b)).best is c
    failed = _result(3, 1.0, failure="out of memory")  # got far before it failed: still never kept
    assert Retraining("8-M", (failed, a)).best is a and Retraining("8-M", (failed,)).best is None
