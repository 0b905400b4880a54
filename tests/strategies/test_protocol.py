"""What every strategy promises the search and the CLI, checked for each one alike."""
import numpy as np
import pytest

from alife_nas.strategies import STRATEGIES
from tests.conftest import fake_score


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_initial_trainings_is_what_initialize_asks_to_score(name):
    cls = STRATEGIES[name]
    strategy = cls(cls.Options())
    asked = []

    def evaluate(step, requests):
        asked.extend(requests)
        return [fake_score(r.genome, r.index)["fitness"] for r in requests]

    strategy.initialize(np.random.default_rng(0), evaluate)
    assert strategy.initial_trainings() == len(asked)
