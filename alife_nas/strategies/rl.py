"""NAS-RL (Zoph & Le 2017): a recurrent controller that writes genomes, trained with REINFORCE.

The controller is a one-layer LSTM that emits a genome token by token: a filter count from the
set, a max-pool ``M`` or END. Each emitted token is the next step's input. The first layer is a
conv (no pool straight on the input, no empty genome), and a genome stops at END or at
``controller_max_layers`` layers (END, so the controller choosing the depth, is ours: the paper
writes a fixed number of layers and raises it on a schedule). One strategy step samples
``controller_batch`` (m) genomes, scores them (the reward R is the fitness the evaluator gives,
the best epoch's validation accuracy; with ``reward="cubed"`` its cube, as the paper cubes its
reward) and takes one REINFORCE step:

    grad J = 1/m * sum_k sum_t grad log P(a_t | a_<t) * (R_k - b)

with Adam (gradient ascent), where b is an exponential moving average of the rewards seen
(decay ``baseline_decay``), started at the first batch's mean. Pure numpy with a hand-written
backward pass through time, float64 throughout: given the generator, every draw and update is
the same on every run, and :meth:`state` holds the weights, Adam's moments and step, and the
baseline bit for bit, so a resumed run continues exactly.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator
from alife_nas.genome import (
    MAXPOOL,
    Conv,
    Genome,
    Layer,
)
from alife_nas.options import check_fields, filters_option, option

__all__ = ["ControllerOptions", "Controller", "NasRL", "Adam"]

#: How many recent rewards stand for "the population" in log lines and curves.
WINDOW = 20

#: Initial weights are uniform in [-INIT_SCALE, INIT_SCALE], as in the paper.
INIT_SCALE = 0.08

#: What the controller is rewarded with (:func:`reward_of`): ``best``, the fitness itself (today's
#: default), or ``cubed``, the fitness cubed (NAS-RL cubes the maximum validation accuracy of the
#: last 5 epochs; here the cube of the fitness the evaluator gives, docs/baselines.md).
REWARDS: tuple[str, ...] = ("best", "cubed")


def reward_of(fitness: float, rule: str = "best") -> float:
    """The controller's reward for a genome of this fitness under ``rule`` (see :data:`REWARDS`)."""
    if rule == "best":
        return float(fitness)
    if rule == "cubed":
        return float(fitness) ** 3
    raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {rule!r}")


@dataclass(frozen=True)
class ControllerOptions:
    """NAS-RL's options: the filter set, m architectures per update, the LSTM's hidden size,
    Adam's learning rate, the baseline's decay and the longest genome the controller writes."""

    filters: tuple[int, ...] = filters_option()
    controller_batch: int = option(5, "Genomes the controller writes per step (m).", low=1, high=10_000)
    controller_hidden: int = option(35, "LSTM units of the controller.", low=1, high=4096)
    controller_lr: float = option(0.01, "The controller's Adam learning rate.", low=0.0, high=10.0, low_open=True)
    baseline_decay: float = option(0.95, "Decay of the reward baseline's moving average.", low=0.0, high=1.0)
    controller_max_layers: int = option(12, "Longest genome the controller writes.", low=1, high=1000)
    reward: str = option("best", "The controller's reward R: best (the fitness a genome gets, its best epoch's "
                                 "validation accuracy) or cubed (that fitness cubed, as NAS-RL cubes its reward).",
                         choices=REWARDS)

    def __post_init__(self) -> None:
        check_fields(self)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # never overflows, unlike 1 / (1 + exp(-x))


class Controller:
    """The LSTM policy over genomes: tokens are the filter counts (ascending), ``M`` and END.

    Parameters: ``embed`` (one row per token, plus a start row), ``W`` and ``b`` (the four gates
    on [input; hidden]), ``W_out`` and ``b_out`` (token logits from the hidden state).
    """

    NAMES: ClassVar[tuple[str, ...]] = ("embed", "W", "b", "W_out", "b_out")

    def __init__(self, filters: Sequence[int], max_layers: int, params: dict[str, np.ndarray]) -> None:
        self.filters = tuple(filters)
        self.max_layers = max_layers
        self.params = params
        self.pool, self.end = len(self.filters), len(self.filters) + 1  # token ids
        self.vocab = len(self.filters) + 2
        self.hidden = params["b"].shape[0] // 4

    @classmethod
    def random(cls, rng: np.random.Generator, filters: Sequence[int], max_layers: int, hidden: int) -> "Controller":
        """Weights uniform in [-0.08, 0.08], drawn in :attr:`NAMES` order."""
        vocab = len(filters) + 2
        shapes = {"embed": (vocab + 1, hidden), "W": (4 * hidden, 2 * hidden), "b": (4 * hidden,),
                  "W_out": (vocab, hidden), "b_out": (vocab,)}
        params = {name: rng.uniform(-INIT_SCALE, INIT_SCALE, shapes[name]) for name in cls.NAMES}
        return cls(filters, max_layers, params)

    # --- the policy --------------------------------------------------------------------------
    def _allowed(self, position: int) -> np.ndarray:
        """Tokens allowed at ``position``: a conv first; then anything (END ends the genome)."""
        allowed = np.ones(self.vocab, dtype=bool)
        if position == 0:
            allowed[[self.pool, self.end]] = False
        return allowed

    def _cell(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        p, n = self.params, self.hidden
        xh = np.concatenate([x, h])
        z = p["W"] @ xh + p["b"]
        i, f, o, g = _sigmoid(z[:n]), _sigmoid(z[n:2 * n]), _sigmoid(z[2 * n:3 * n]), np.tanh(z[3 * n:])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        return o * tanh_c, c_new, (xh, c, i, f, o, g, tanh_c)

    def _probs(self, h: np.ndarray, position: int) -> np.ndarray:
        logits = self.params["W_out"] @ h + self.params["b_out"]
        allowed = self._allowed(position)
        logits = np.where(allowed, logits, -np.inf)
        e = np.exp(logits - logits[allowed].max())
        return e / e.sum()

    def _run(self, rng: np.random.Generator | None, tokens: Sequence[int] | None) -> tuple[list[int], list[tuple]]:
        """Walk the LSTM, sampling tokens from ``rng`` or following ``tokens``; returns them and
        each decision's (input token, cell cache, hidden state, probabilities, chosen token)."""
        h = np.zeros(self.hidden)
        c = np.zeros(self.hidden)
        previous = self.vocab  # the start row of the embedding
        chosen: list[int] = []
        steps: list[tuple] = []
        for position in range(self.max_layers):  # the longest genome ends without an END decision
            h, c, cache = self._cell(self.params["embed"][previous], h, c)
            probs = self._probs(h, position)
            if tokens is None:
                assert rng is not None
                edges = np.cumsum(probs)
                token = int(min(np.searchsorted(edges, rng.random() * edges[-1], side="right"), self.vocab - 1))
            else:
                token = int(tokens[position])
            steps.append((previous, cache, h, probs, token))
            chosen.append(token)
            if token == self.end:
                break
            previous = token
        return chosen, steps

    def sample(self, rng: np.random.Generator) -> list[int]:
        """One token sequence (END included unless the genome has the most layers); one uniform per token."""
        return self._run(rng, None)[0]

    def genome(self, tokens: Sequence[int]) -> Genome:
        """The genome a token sequence writes."""
        layers: list[Layer] = []
        for token in tokens:
            if token == self.end:
                break
            layers.append(MAXPOOL if token == self.pool else Conv(int(self.filters[token])))
        return Genome(tuple(layers))

    def tokens(self, genome: Genome) -> list[int]:
        """The token sequence that writes ``genome`` (END included unless it has the most layers)."""
        out = [self.pool if not isinstance(layer, Conv) else self.filters.index(layer.filters) for layer in genome]
        return out if len(out) >= self.max_layers else out + [self.end]

    def log_prob(self, tokens: Sequence[int]) -> float:
        """log P(tokens) under the policy."""
        _, steps = self._run(None, tokens)
        return float(sum(np.log(probs[token]) for _, _, _, probs, token in steps))

    def gradient(self, tokens: Sequence[int], weight: float = 1.0) -> dict[str, np.ndarray]:
        """The gradient of ``weight * log P(tokens)`` for every parameter (backpropagation through time)."""
        p, n = self.params, self.hidden
        _, steps = self._run(None, tokens)
        grads = {name: np.zeros_like(value) for name, value in p.items()}
        dh_next = np.zeros(n)
        dc_next = np.zeros(n)
        for previous, (xh, c_prev, i, f, o, g, tanh_c), h, probs, token in reversed(steps):
            dlogits = -weight * probs  # d/dlogits of weight * log softmax[token]; masked tokens have p = 0
            dlogits[token] += weight
            grads["W_out"] += np.outer(dlogits, h)
            grads["b_out"] += dlogits
            dh = p["W_out"].T @ dlogits + dh_next
            dc = dc_next + dh * o * (1.0 - tanh_c**2)
            dz = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                 dh * tanh_c * o * (1.0 - o), dc * i * (1.0 - g**2)])
            grads["W"] += np.outer(dz, xh)
            grads["b"] += dz
            dxh = p["W"].T @ dz
            grads["embed"][previous] += dxh[:n]
            dh_next, dc_next = dxh[n:], dc * f
        return grads


class Adam:
    """Adam (Kingma & Ba) as gradient *ascent*, with the usual betas 0.9 / 0.999 and eps 1e-8."""

    def __init__(self, lr: float, moments: dict[str, np.ndarray], squares: dict[str, np.ndarray], t: int = 0) -> None:
        self.lr, self.m, self.v, self.t = lr, moments, squares, t

    @classmethod
    def zeros(cls, lr: float, params: dict[str, np.ndarray]) -> "Adam":
        return cls(lr, {k: np.zeros_like(v) for k, v in params.items()}, {k: np.zeros_like(v) for k, v in params.items()})

    def ascend(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """One step up the gradient, in place."""
        self.t += 1
        for name, grad in grads.items():
            self.m[name] = 0.9 * self.m[name] + 0.1 * grad
            self.v[name] = 0.999 * self.v[name] + 0.001 * grad**2
            m_hat = self.m[name] / (1.0 - 0.9**self.t)
            v_hat = self.v[name] / (1.0 - 0.999**self.t)
            params[name] = params[name] + self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


class NasRL:
    """NAS-RL's controller as a strategy: each step samples m genomes and takes one REINFORCE step."""

    name: ClassVar[str] = "rl"
    Options: ClassVar[type] = ControllerOptions

    def __init__(self, options: ControllerOptions) -> None:
        self.options = options
        self.controller: Controller | None = None
        self.adam: Adam | None = None
        self.baseline: float | None = None
        self.best_genome: str | None = None
        self.best_fitness = 0.0
        self.recent: list[float] = []

    def reinforce(self, sequences: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict:
        """One REINFORCE update from m scored sequences; moves the baseline after. Returns what it used."""
        assert self.controller is not None and self.adam is not None
        rewards = [float(r) for r in rewards]
        used = float(np.mean(rewards)) if self.baseline is None else self.baseline
        advantages = [r - used for r in rewards]
        total = {name: np.zeros_like(value) for name, value in self.controller.params.items()}
        for tokens, advantage in zip(sequences, advantages):
            for name, grad in self.controller.gradient(tokens, advantage / len(rewards)).items():
                total[name] += grad
        self.adam.ascend(self.controller.params, total)
        baseline, decay = used, self.options.baseline_decay
        for r in rewards:  # an exponential moving average over the architectures, in order
            baseline = decay * baseline + (1.0 - decay) * r
        self.baseline = baseline
        return {"baseline": used, "advantages": advantages, "next_baseline": baseline}

    def _batch(self, rng: np.random.Generator, evaluate: Evaluator, step: int, given: Sequence[Genome] = ()) -> dict:
        """Sample and score the controller's batch and take one REINFORCE step on it. ``given``
        (known genomes, step 0 only) are scored first in the same batch, as extra samples: they count
        for the best genome found, not for the update (the controller did not draw them)."""
        assert self.controller is not None
        sequences = [self.controller.sample(rng) for _ in range(self.options.controller_batch)]
        genomes = [self.controller.genome(tokens) for tokens in sequences]
        log_probs = [self.controller.log_prob(tokens) for tokens in sequences]
        first = len(given)
        requests = [EvalRequest(g, k, "init") for k, g in enumerate(given)]
        requests += [EvalRequest(g, first + k, "controller") for k, g in enumerate(genomes)]
        scored = [float(f) for f in evaluate(step, requests)]
        known = [{"operator": "init", "genome": str(g), "fitness": f, "given": True} for g, f in zip(given, scored)]
        for genome, value in zip(given, scored):
            if self.best_genome is None or value > self.best_fitness:
                self.best_genome, self.best_fitness = str(genome), value
        self.recent = (self.recent + scored[:first])[-WINDOW:]
        fitness = scored[first:]
        rewards = [reward_of(f, self.options.reward) for f in fitness]
        update = self.reinforce(sequences, rewards)
        for genome, value in zip(genomes, fitness):  # the best genome by fitness, whatever the reward
            if self.best_genome is None or value > self.best_fitness:
                self.best_genome, self.best_fitness = str(genome), value
        self.recent = (self.recent + fitness)[-WINDOW:]
        candidates = [{"operator": "controller", "genome": str(g), "fitness": f, "log_prob": lp}
                      for g, f, lp in zip(genomes, fitness, log_probs)]
        if self.options.reward != "best":  # the reward differs from the fitness: kept with it
            for candidate, reward in zip(candidates, rewards):
                candidate["reward"] = reward
        return {"step": step, "outcome": "init" if step == 0 else "update", "max_c": max(scored), **update,
                "candidates": known + candidates}

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator, init_genomes: Sequence[Genome] = ()) -> dict:
        """A random controller and its first batch; known genomes (``--init-genomes``) are scored first,
        as extra samples of step 0 (see :meth:`_batch`)."""
        opts = self.options
        self.controller = Controller.random(rng, opts.filters, opts.controller_max_layers, opts.controller_hidden)
        self.adam = Adam.zeros(opts.controller_lr, self.controller.params)
        return self._batch(rng, evaluate, 0, list(init_genomes))

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        return self._batch(rng, evaluate, step)

    def state(self) -> dict:
        assert self.controller is not None and self.adam is not None
        return {"weights": _encode(self.controller.params), "adam_m": _encode(self.adam.m),
                "adam_v": _encode(self.adam.v), "adam_t": self.adam.t, "baseline": self.baseline,
                "best_genome": self.best_genome, "best_fitness": self.best_fitness, "recent": self.recent}

    def load_state(self, state: dict, lattice: dict | None) -> None:
        opts = self.options
        self.controller = Controller(opts.filters, opts.controller_max_layers, _decode(state["weights"]))
        self.adam = Adam(opts.controller_lr, _decode(state["adam_m"]), _decode(state["adam_v"]), int(state["adam_t"]))
        self.baseline = state["baseline"]
        self.best_genome, self.best_fitness = state["best_genome"], state["best_fitness"]
        self.recent = list(state["recent"])

    def initial_trainings(self, init_genomes: Sequence[Genome] = ()) -> int:
        return self.options.controller_batch + len(init_genomes)  # the controller's first batch, the known genomes

    def lattice(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return list(self.recent)

    def best(self) -> tuple[str, float]:
        return str(self.best_genome), self.best_fitness


def _encode(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Arrays as JSON: shape and the float64 bytes in base64 (exact, and half the size of decimal text)."""
    return {name: {"shape": list(a.shape), "f8": base64.b64encode(np.ascontiguousarray(a, "<f8").tobytes()).decode()}
            for name, a in arrays.items()}


def _decode(data: dict[str, dict]) -> dict[str, np.ndarray]:
    return {name: np.frombuffer(base64.b64decode(d["f8"]), "<f8").reshape(d["shape"]).copy() for name, d in data.items()}
