"""The L×L world: one genome and its fitness per cell, square neighbourhoods, torus or bounded."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from alife_nas.genome import Genome, parse_genome
from alife_nas.validation import check_int

__all__ = ["Cell", "Lattice"]

Cell = tuple[int, int]


class Lattice:
    """An L×L grid of (genome, fitness, age) cells.

    ``age`` is the step at which a cell was last written (0 = initialisation); pictures use it.
    The neighbourhood of a cell is the (2d+1)×(2d+1) square around it minus the cell itself;
    on a torus the edges wrap, on a bounded grid the square is clipped. A radius of L or more
    reaches the whole lattice (the search's config refuses d > L; a Lattice takes any d >= 1).
    """

    def __init__(self, size: int, radius: int = 1, torus: bool = True) -> None:
        self.size = check_int("lattice size", size, 2)
        self.radius = check_int("neighbourhood radius", radius, 1)
        self.torus = torus
        self.genomes: list[list[Genome | None]] = [[None] * self.size for _ in range(self.size)]
        self.fitness = np.zeros((self.size, self.size), dtype=float)
        self.age = np.zeros((self.size, self.size), dtype=int)
        # --inherit-weights: the genome key of the training whose weights each cell holds (None:
        # its genome's own fresh training); kept only by runs that inherit
        self.weights: list[list[str | None]] = [[None] * self.size for _ in range(self.size)]

    # --- cells ---------------------------------------------------------------------------
    def cells(self) -> Iterator[Cell]:
        """All cells in row-major order (the order initialisation fills them)."""
        for r in range(self.size):
            for c in range(self.size):
                yield (r, c)

    def genome(self, cell: Cell) -> Genome:
        genome = self.genomes[cell[0]][cell[1]]
        if genome is None:
            raise ValueError(f"cell {cell} is empty")
        return genome

    def set(self, cell: Cell, genome: Genome, fitness: float, step: int, weights: str | None = None) -> None:
        r, c = cell
        self.genomes[r][c] = genome
        self.fitness[r, c] = fitness
        self.age[r, c] = step
        self.weights[r][c] = weights

    def weights_key(self, cell: Cell) -> str:
        """The genome key of the training whose weights ``cell`` holds (``--inherit-weights``)."""
        return self.weights[cell[0]][cell[1]] or str(self.genome(cell))

    def refresh_fitness(self, current: Callable[[Genome], float | None]) -> int:
        """Give every cell its genome's current fitness where ``current`` knows one (``--reevaluate``:
        a genome's mean moves as it is re-trained elsewhere); ages are kept. Returns the cells changed."""
        changed = 0
        for r, c in self.cells():
            value = current(self.genomes[r][c])
            if value is not None and float(value) != float(self.fitness[r, c]):
                self.fitness[r, c] = float(value)
                changed += 1
        return changed

    def neighbours(self, cell: Cell) -> list[Cell]:
        """The cell's neighbourhood in row-major order, without the cell and without repeats.

        Repeats happen on a small torus where the square wraps onto itself (e.g. L=3, d=2).
        """
        r0, c0 = cell
        # a square of side 2L+1 already covers every cell, on a torus or not: a larger radius
        # gives the same (sorted) neighbourhood, so it is clamped and can never loop for long
        reach = min(self.radius, self.size)
        seen: set[Cell] = set()
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                r, c = r0 + dr, c0 + dc
                if self.torus:
                    r, c = r % self.size, c % self.size
                elif not (0 <= r < self.size and 0 <= c < self.size):
                    continue
                seen.add((r, c))
        seen.discard((r0, c0))
        return sorted(seen)

    def distance(self, a: Cell, b: Cell) -> int:
        """Chebyshev distance between two cells, wrapped on a torus (how far apart two squares are)."""
        rows, cols = abs(a[0] - b[0]), abs(a[1] - b[1])
        if self.torus:
            rows, cols = min(rows, self.size - rows), min(cols, self.size - cols)
        return max(rows, cols)

    def area(self, cell: Cell) -> list[Cell]:
        """The cell and its neighbourhood, row-major: every cell a step mastered here may touch."""
        return sorted([cell, *self.neighbours(cell)])

    @property
    def spacing(self) -> int:
        """The least distance (2d+1) at which two cells' areas share no cell, torus or bounded."""
        return 2 * self.radius + 1

    # --- selection -----------------------------------------------------------------------
    def pick_master(
        self, rng: np.random.Generator, mode: str = "uniform", allowed: Sequence[Cell] | None = None
    ) -> Cell:
        """s1: uniform over ``allowed`` (default: all cells, row-major), or proportional to fitness.

        Proportional falls back to uniform when every allowed cell has fitness 0. With all cells
        allowed, the draw is the seed's: one integer (or one weighted choice) over L*L indices.
        """
        if allowed is None:
            flat = np.arange(self.size * self.size)
        else:
            if not allowed:
                raise ValueError("no cell is allowed to be a master")
            flat = np.array([r * self.size + c for r, c in allowed])
        n = len(flat)
        if mode == "uniform":
            index = int(rng.integers(n))
        elif mode == "proportional":
            weights = np.clip(self.fitness.ravel()[flat], 0.0, None)
            total = weights.sum()
            index = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
        else:
            raise ValueError(f"unknown master selection {mode!r}; expected 'uniform' or 'proportional'")
        return divmod(int(flat[index]), self.size)

    def pick_masters(self, rng: np.random.Generator, count: int, mode: str = "uniform") -> list[Cell]:
        """Up to ``count`` masters whose areas share no cell, drawn one after another.

        Each is drawn (like :meth:`pick_master`) among the cells at distance >= 2d+1 from every
        master drawn before it; when no such cell is left the list is shorter than ``count``.
        """
        masters: list[Cell] = []
        allowed = list(self.cells())
        while len(masters) < count and allowed:
            master = self.pick_master(rng, mode, allowed)
            masters.append(master)
            allowed = [cell for cell in allowed if self.distance(cell, master) >= self.spacing]
        return masters

    def pick_partner(self, rng: np.random.Generator, master: Cell) -> Cell:
        """s2: uniform over s1's neighbourhood."""
        hood = self.neighbours(master)
        return hood[int(rng.integers(len(hood)))]

    def weakest_neighbours(
        self, rng: np.random.Generator, master: Cell, exclude: Sequence[Cell], k: int = 2
    ) -> list[Cell]:
        """The k lowest-fitness cells of ``master``'s neighbourhood minus ``exclude``.

        Ties are broken at random: one uniform key per candidate cell is drawn, always, so the
        number of draws does not depend on the fitness values. Weakest first.
        """
        pool = [cell for cell in self.neighbours(master) if cell not in exclude]
        keys = rng.random(len(pool))
        order = sorted(range(len(pool)), key=lambda i: (self.fitness[pool[i]], keys[i]))
        return [pool[i] for i in order[:k]]

    # --- summaries and persistence --------------------------------------------------------
    def best(self) -> tuple[Cell, Genome, float]:
        """The fittest cell (first in row-major order on ties)."""
        index = int(np.argmax(self.fitness))
        cell = divmod(index, self.size)
        return cell, self.genome(cell), float(self.fitness[cell])

    def to_dict(self) -> dict:
        """JSON-safe snapshot: genomes as compact text, fitness, age and geometry (and, in a run
        that inherits weights, each cell's weights key)."""
        snapshot = {
            "size": self.size,
            "radius": self.radius,
            "torus": self.torus,
            "genomes": [[None if g is None else str(g) for g in row] for row in self.genomes],
            "fitness": self.fitness.tolist(),
            "age": self.age.tolist(),
        }
        if any(key is not None for row in self.weights for key in row):
            snapshot["weights"] = [list(row) for row in self.weights]
        return snapshot

    @classmethod
    def from_dict(cls, data: dict) -> "Lattice":
        lattice = cls(int(data["size"]), int(data["radius"]), bool(data["torus"]))
        lattice.genomes = [[None if g is None else parse_genome(g) for g in row] for row in data["genomes"]]
        lattice.fitness = np.array(data["fitness"], dtype=float)
        lattice.age = np.array(data["age"], dtype=int)
        if "weights" in data:
            lattice.weights = [list(row) for row in data["weights"]]
        return lattice

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lattice) and self.to_dict() == other.to_dict()
