"""The one re-training policy, with the real trainer on digits."""
import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.config import SearchConfig
from alife_nas.retraining import make_trainer, retrain


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
