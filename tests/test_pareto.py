"""The Pareto front: nothing on it is dominated, everything off it is."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alife_nas.pareto import pareto_front


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] >= b[1] and a != b


def test_the_front_of_a_small_example() -> None:
    sizes = [100, 50, 200, 50, 10, None]
    fitness = [0.9, 0.8, 0.95, 0.7, 0.5, 0.99]
    assert pareto_front(sizes, fitness) == [4, 1, 0, 2]


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 20)), min_size=1, max_size=40))
def test_no_point_on_the_front_is_dominated_and_every_other_point_is(points: list[tuple[int, int]]) -> None:
    sizes = [p[0] for p in points]
    fitness = [p[1] / 20 for p in points]
    pairs = list(zip(sizes, fitness))
    front = pareto_front(sizes, fitness)
    for i in front:
        assert not any(_dominates(q, pairs[i]) for q in pairs)
    on_front = {pairs[i] for i in front}
    for p in pairs:
        assert p in on_front or any(_dominates(q, p) for q in pairs)
    assert [sizes[i] for i in front] == sorted(sizes[i] for i in front)
