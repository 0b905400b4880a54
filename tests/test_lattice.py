import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.genome import parse_genome
from alife_nas.lattice import Lattice


def filled(size, radius=1, torus=True, fitness=None):
    lat = Lattice(size, radius, torus)
    for i, cell in enumerate(lat.cells()):
        lat.set(cell, parse_genome(str(16 * (i + 1))), 0.0 if fitness is None else fitness[cell], 0)
    return lat


def test_torus_radius1_wraps_at_corner():
    lat = Lattice(5, 1, torus=True)
    assert lat.neighbours((0, 0)) == sorted([(4, 4), (4, 0), (4, 1), (0, 4), (0, 1), (1, 4), (1, 0), (1, 1)])
    assert len(lat.neighbours((2, 2))) == 8 and (2, 2) not in lat.neighbours((2, 2))


def test_bounded_radius1_clips_at_corner_and_edge():
    lat = Lattice(5, 1, torus=False)
    assert lat.neighbours((0, 0)) == [(0, 1), (1, 0), (1, 1)]
    assert lat.neighbours((0, 2)) == [(0, 1), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert lat.neighbours((4, 4)) == [(3, 3), (3, 4), (4, 3)]
    assert len(lat.neighbours((2, 2))) == 8


@pytest.mark.parametrize("torus, cell, expected", [
    (True, (0, 0), 24), (True, (3, 3), 24), (False, (0, 0), 8), (False, (0, 3), 14), (False, (1, 1), 15),
    (False, (3, 3), 24),
])
def test_radius2_counts(torus, cell, expected):
    assert len(Lattice(7, 2, torus).neighbours(cell)) == expected


def test_radius2_torus_corner_contents():
    hood = set(Lattice(7, 2, True).neighbours((0, 0)))
    assert (5, 5) in hood and (2, 2) in hood and (6, 1) in hood and (0, 0) not in hood and (3, 0) not in hood


def test_small_torus_has_no_repeats():
    hood = Lattice(3, 2, True).neighbours((1, 1))
    assert len(hood) == len(set(hood)) == 8


def test_weakest_excludes_master_and_partner_and_breaks_ties_at_random():
    fit = np.full((5, 5), 0.5)
    fit[1, 1] = 0.1  # weakest, but it is the partner
    fit[1, 2] = 0.2
    lat = filled(5, fitness=fit)
    rng = np.random.default_rng(0)
    seconds = set()
    for _ in range(200):
        first, second = lat.weakest_neighbours(rng, (2, 2), exclude=[(2, 2), (1, 1)])
        assert first == (1, 2)
        assert second not in {(2, 2), (1, 1), (1, 2)}
        seconds.add(second)
    assert len(seconds) == 6  # every other tied neighbour gets picked sometimes


def test_weakest_with_too_few_cells():
    lat = filled(2, torus=False)
    assert len(lat.weakest_neighbours(np.random.default_rng(0), (0, 0), exclude=[(0, 0), (0, 1)])) == 2
    lat3 = filled(3, torus=False)
    got = lat3.weakest_neighbours(np.random.default_rng(0), (0, 0), exclude=[(0, 0), (0, 1), (1, 0)])
    assert got == [(1, 1)]


def test_master_selection_uniform_and_proportional():
    fit = np.zeros((3, 3))
    fit[2, 1] = 1.0
    lat = filled(3, fitness=fit)
    rng = np.random.default_rng(3)
    assert {lat.pick_master(rng, "proportional") for _ in range(50)} == {(2, 1)}
    assert len({lat.pick_master(rng, "uniform") for _ in range(300)}) == 9
    zero = filled(3)
    assert len({zero.pick_master(rng, "proportional") for _ in range(300)}) == 9  # all zero -> uniform
    with pytest.raises(ValueError):
        lat.pick_master(rng, "best")


def test_partner_is_a_neighbour():
    lat = filled(5, torus=False)
    rng = np.random.default_rng(1)
    for _ in range(100):
        master = lat.pick_master(rng)
        assert lat.pick_partner(rng, master) in lat.neighbours(master)


def test_round_trip_and_best():
    fit = np.arange(16, dtype=float).reshape(4, 4) / 16
    lat = filled(4, radius=2, torus=False, fitness=fit)
    lat.age[1, 1] = 7
    again = Lattice.from_dict(lat.to_dict())
    assert again == lat and again.age[1, 1] == 7
    assert lat.best()[0] == (3, 3)


def test_bad_geometry():
    with pytest.raises(ValueError):
        Lattice(1)
    with pytest.raises(ValueError):
        Lattice(3, radius=0)


# --- distance, areas and the masters of a round ------------------------------------------------
geometries = st.tuples(st.integers(3, 12), st.integers(1, 2), st.booleans())


def test_distance_wraps_on_a_torus_only():
    assert Lattice(9, 1, True).distance((0, 0), (8, 7)) == 2
    assert Lattice(9, 1, False).distance((0, 0), (8, 7)) == 8
    assert Lattice(9, 1, True).distance((2, 3), (2, 3)) == 0
    assert Lattice(6, 1, True).spacing == 3 and Lattice(6, 2, False).spacing == 5


def test_area_is_the_cell_and_its_neighbourhood():
    lat = Lattice(7, 2, True)
    assert lat.area((0, 0)) == sorted([(0, 0), *lat.neighbours((0, 0))]) and len(lat.area((0, 0))) == 25
    assert Lattice(5, 1, False).area((0, 0)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(Lattice(3, 2, True).area((1, 1))) == 9  # a small torus: the square covers it once


@given(geometries, st.data())
def test_areas_are_disjoint_exactly_at_distance_2d_plus_1(geometry, data):
    lat = Lattice(*geometry)
    a = (data.draw(st.integers(0, lat.size - 1)), data.draw(st.integers(0, lat.size - 1)))
    b = (data.draw(st.integers(0, lat.size - 1)), data.draw(st.integers(0, lat.size - 1)))
    disjoint = not set(lat.area(a)) & set(lat.area(b))
    assert disjoint == (lat.distance(a, b) >= lat.spacing)


@pytest.mark.parametrize("mode", ["uniform", "proportional"])
def test_pick_master_among_all_cells_draws_like_the_seed(mode):
    lat = filled(5, fitness=np.random.default_rng(0).uniform(0, 1, (5, 5)))
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    assert [lat.pick_master(a, mode) for _ in range(50)] == [lat.pick_master(b, mode, list(lat.cells())) for _ in range(50)]
    assert a.bit_generator.state == b.bit_generator.state


def test_pick_master_stays_among_the_allowed_cells():
    fit = np.zeros((4, 4))
    fit[3, 3] = 1.0  # the fittest cell is not allowed: proportional picks among the allowed ones
    lat = filled(4, fitness=fit)
    allowed = [(0, 0), (1, 2), (2, 1)]
    rng = np.random.default_rng(0)
    for mode in ("uniform", "proportional"):
        assert {lat.pick_master(rng, mode, allowed) for _ in range(200)} == set(allowed)
    with pytest.raises(ValueError, match="no cell"):
        lat.pick_master(rng, "uniform", [])


@settings(max_examples=60, deadline=None)
@given(geometries, st.integers(1, 20), st.sampled_from(["uniform", "proportional"]), st.integers(0, 2**32))
def test_masters_of_a_round_have_disjoint_areas(geometry, count, mode, seed):
    lat = filled(geometry[0], geometry[1], geometry[2],
                 fitness=np.random.default_rng(seed).uniform(0, 1, (geometry[0], geometry[0])))
    masters = lat.pick_masters(np.random.default_rng(seed), count, mode)
    assert 1 <= len(masters) <= count
    for i, a in enumerate(masters):
        for b in masters[i + 1:]:
            assert not set(lat.area(a)) & set(lat.area(b))
    if len(masters) < count:  # it stopped short only because no cell was left
        assert all(any(lat.distance(cell, m) < lat.spacing for m in masters) for cell in lat.cells())


def test_one_master_of_a_round_draws_like_pick_master():
    lat = filled(6)
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    assert [lat.pick_masters(a, 1) for _ in range(20)] == [[lat.pick_master(b)] for _ in range(20)]


# --- edges: any radius, bad geometry -------------------------------------------------------------
def square_by_distance(size, radius, torus, cell):
    """The neighbourhood by its definition: every other cell within Chebyshev distance d (wrapped on a torus)."""
    hood = []
    for r in range(size):
        for c in range(size):
            dr, dc = abs(r - cell[0]), abs(c - cell[1])
            if torus:
                dr, dc = min(dr, size - dr), min(dc, size - dc)
            if (r, c) != cell and max(dr, dc) <= radius:
                hood.append((r, c))
    return hood


@given(st.integers(2, 9), st.integers(1, 25), st.booleans(), st.data())
def test_neighbourhood_of_any_radius_is_the_square_by_definition(size, radius, torus, data):
    cell = (data.draw(st.integers(0, size - 1)), data.draw(st.integers(0, size - 1)))
    assert Lattice(size, radius, torus).neighbours(cell) == square_by_distance(size, radius, torus, cell)


@pytest.mark.parametrize("torus", [True, False])
def test_a_radius_far_beyond_the_lattice_is_the_whole_lattice_at_once(torus):
    lattice = filled(16, radius=10**9, torus=torus)
    everything = list(lattice.cells())
    assert lattice.neighbours((3, 5)) == [cell for cell in everything if cell != (3, 5)]
    assert lattice.area((0, 0)) == everything
    rng = np.random.default_rng(0)
    assert lattice.pick_partner(rng, (0, 0)) in everything
    assert len(lattice.pick_masters(rng, 4)) == 1  # every area is the whole lattice
    big = Lattice(256, 10**6)
    assert len(big.neighbours((0, 0))) == 256 * 256 - 1


@pytest.mark.parametrize("size, radius, words", [
    (1, 1, "lattice size must be at least 2"),
    (2.5, 1, "lattice size must be a whole number"),
    (True, 1, "lattice size must be a whole number"),
    (3, 0, "neighbourhood radius must be at least 1"),
    (3, float("inf"), "neighbourhood radius must be a whole number"),
])
def test_bad_geometry_names_the_value(size, radius, words):
    with pytest.raises(ValueError, match=words):
        Lattice(size, radius)
