"""Tabular Q-learning on any env with a Discrete action and a MultiDiscrete (or Discrete)
observation, trained on a Gymnasium vector env (a batch of transitions per update).

- `QLearningAgent`: Watkins' Q-learning (Sutton & Barto 2018, §6.5), step size max(1/visits, floor).
  Optional **state aggregation** (Sutton & Barto §9.3): `state_fields` names the observation fields
  the table is indexed by; observations that differ only in the other fields share a row. A table
  generalizes to unseen problems only inside a row, so fewer, coarser rows trade resolution for
  rows that pool many training problems.
- `DoubleQLearningAgent`: Double Q-learning (van Hasselt 2010, "Double Q-learning", Algorithm 1;
  Sutton & Barto §6.7): two tables, each transition updates one of them (a fair coin) toward the
  *other* table's value of its own greedy next action, which removes the maximization bias of
  Q-learning's max over noisy estimates; it acts greedily on their sum. Where we differ from the
  paper: per-(state, action) step sizes 1/visits with a floor, as `QLearningAgent`, and ε-greedy on
  the sum of the tables (the paper leaves the behaviour policy open).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttc_gym.validation import check_float, check_int


@dataclass(frozen=True)
class QLearningConfig:
    """How `QLearningAgent.train` learns (the bench's `q-learning` agent takes its defaults from here)."""

    total_steps: int = 500_000  # environment transitions over all sub-envs
    gamma: float = 1.0  # rollouts are short and finite: no discount
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_fraction: float = 0.6  # fraction of training over which epsilon decays linearly
    min_learning_rate: float = 0.02  # step size is max(1 / visits, this)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("total_steps", self.total_steps, minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_float("gamma", self.gamma, minimum=0.0, maximum=1.0)
        check_float("epsilon_start", self.epsilon_start, minimum=0.0, maximum=1.0)
        check_float("epsilon_end", self.epsilon_end, minimum=0.0, maximum=1.0)
        check_float("epsilon_decay_fraction", self.epsilon_decay_fraction, minimum=0.0, maximum=1.0)
        check_float("min_learning_rate", self.min_learning_rate, minimum=0.0, maximum=1.0)


def _state_sizes(space: spaces.Space) -> np.ndarray:
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return space.nvec.astype(np.int64)
    if isinstance(space, spaces.Discrete):
        return np.array([space.n], dtype=np.int64)
    raise TypeError(
        f"QLearningAgent needs a Discrete or 1-D MultiDiscrete observation space, got {space}."
    )


@dataclass
class QLearningAgent:
    """A dense Q-table indexed by the flattened observation, or by its fields `state_fields` (indices
    into the observation; None: all of them)."""

    observation_space: spaces.Space
    action_space: spaces.Space
    state_fields: tuple[int, ...] | None = None
    q: np.ndarray = field(init=False)
    visits: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.action_space, spaces.Discrete):
            raise TypeError(f"QLearningAgent needs a Discrete action space, got {self.action_space}.")
        sizes = _state_sizes(self.observation_space)
        self._obs_width = sizes.size
        if self.state_fields is None:
            self._fields = np.arange(sizes.size)
        else:
            fields = tuple(self.state_fields)
            if (not fields or len(set(fields)) != len(fields)
                    or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < sizes.size
                               for i in fields)):
                raise ValueError(f"state_fields must be distinct observation field indices in [0, {sizes.size}), "
                                 f"got {self.state_fields!r}.")
            self.state_fields = tuple(int(i) for i in fields)
            self._fields = np.array(self.state_fields)
        self._sizes = sizes[self._fields]
        n_states = int(np.prod(self._sizes))
        if n_states > 50_000_000:
            raise ValueError(f"observation space has {n_states} states: too many for a dense Q-table.")
        self.q = np.zeros((n_states, self.action_space.n))
        self.visits = np.zeros((n_states, self.action_space.n), dtype=np.int64)

    def state_index(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.int64).reshape(-1, self._obs_width)
        return np.ravel_multi_index(obs[:, self._fields].T, self._sizes)

    def act(self, obs, info: dict | None = None) -> int:
        """Greedy action (ties to the lowest index)."""
        return int(np.argmax(self.q[self.state_index(obs)[0]]))

    def reset(self, seed: int | None = None) -> None:
        """Greedy, hence deterministic: nothing to reset."""

    def train(self, envs: gym.vector.VectorEnv, config: QLearningConfig = QLearningConfig()) -> dict:
        """Learn on a vector env with next-step autoreset, ε-greedy on `_acting_values`, each batch of
        transitions applied by `_update`. Returns {"rollout_returns": the return of every rollout (one
        problem, reset to end) finished in training}."""
        mode = envs.metadata.get("autoreset_mode")
        if mode is not None and getattr(mode, "value", mode) != "NextStep":
            raise ValueError(f"{type(self).__name__}.train expects next-step autoreset, got {mode!r}.")
        rng = np.random.default_rng(config.seed)
        n = envs.num_envs
        obs, _ = envs.reset(seed=config.seed)
        s = self.state_index(obs)
        restarting = np.zeros(n, dtype=bool)
        running = np.zeros(n)
        returns: list[float] = []
        iterations = max(1, config.total_steps // n)
        decay_iters = max(1, int(config.epsilon_decay_fraction * iterations))
        for it in range(iterations):
            eps = config.epsilon_end + (config.epsilon_start - config.epsilon_end) * max(0.0, 1 - it / decay_iters)
            greedy = self._acting_values(s).argmax(axis=1)
            random = rng.integers(self.action_space.n, size=n)
            a = np.where(rng.random(n) < eps, random, greedy)
            obs, r, term, trunc, _ = envs.step(a)
            s_next = self.state_index(obs)
            done = term | trunc
            learn = ~restarting  # a step that only restarted a finished sub-env carries no transition
            self._update(s[learn], a[learn], r[learn], s_next[learn], done[learn], config, rng)
            running[learn] += r[learn]
            returns.extend(running[done & learn].tolist())
            running[done] = 0.0
            restarting = done
            s = s_next
        self._finish()
        return {"rollout_returns": returns}

    def _acting_values(self, s: np.ndarray) -> np.ndarray:
        return self.q[s]

    def _update(self, si, ai, r, sn, done, config: QLearningConfig, rng: np.random.Generator) -> None:
        """Watkins' update of Q(si, ai) toward r + γ max_a Q(sn, a), step size max(1/visits, floor)."""
        # The time step is part of the observation, so truncation is a true terminal state.
        target = r + config.gamma * np.where(done, 0.0, self.q[sn].max(axis=1))
        np.add.at(self.visits, (si, ai), 1)
        lr = np.maximum(1.0 / self.visits[si, ai], config.min_learning_rate)
        # Duplicated (state, action) pairs in one batch: add.at accumulates their updates.
        np.add.at(self.q, (si, ai), lr * (target - self.q[si, ai]))

    def _finish(self) -> None:
        """After training (nothing to do: Q-learning acts on `q` itself)."""


@dataclass
class DoubleQLearningAgent(QLearningAgent):
    """Double Q-learning (module docstring): tables `q_a` and `q_b`; `q` is their mean, what it acts on."""

    q_a: np.ndarray = field(init=False)
    q_b: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.q_a, self.q_b = np.zeros_like(self.q), np.zeros_like(self.q)
        self.visits_b = np.zeros_like(self.visits)  # `visits` counts table A's updates

    def _acting_values(self, s: np.ndarray) -> np.ndarray:
        return self.q_a[s] + self.q_b[s]

    def _update(self, si, ai, r, sn, done, config: QLearningConfig, rng: np.random.Generator) -> None:
        """Van Hasselt's update: a fair coin per transition picks the table to update; that table chooses
        the next action, the other one values it."""
        update_a = rng.random(len(si)) < 0.5
        for rows, (table, other, visits) in ((update_a, (self.q_a, self.q_b, self.visits)),
                                             (~update_a, (self.q_b, self.q_a, self.visits_b))):
            s1, a1, n1 = si[rows], ai[rows], sn[rows]
            best = table[n1].argmax(axis=1)
            target = r[rows] + config.gamma * np.where(done[rows], 0.0, other[n1, best])
            np.add.at(visits, (s1, a1), 1)
            lr = np.maximum(1.0 / visits[s1, a1], config.min_learning_rate)
            np.add.at(table, (s1, a1), lr * (target - table[s1, a1]))

    def _finish(self) -> None:
        self.q = (self.q_a + self.q_b) / 2
