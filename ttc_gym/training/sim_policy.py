"""A small softmax policy for TTC-Sim-v0 (and any env with a 1-D MultiDiscrete observation and a
Discrete action): an MLP over the one-hot encoding of the observation.

It is an agent for `ttc_gym.evaluation.run_rollout` (`act(obs, info)`, `reset(seed=None)` as
`ttc_gym.agent` says), gives the log-probabilities the trainers need (`log_prob`), samples batches
from an explicit `torch.Generator`, and saves / loads checkpoints (atomically) that reproduce its
log-probabilities exactly.

Observations larger than the training space (an env with a larger budget H) are clipped to the
largest value seen in training: the policy then acts as it did at its last trained step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ttc_gym.agent import problem_seed
from ttc_gym.validation import check_int

CHECKPOINT_FORMAT = "ttc-gym/sim-policy/v1"


class SimPolicy(nn.Module):
    """pi(a | obs) = softmax(MLP(one_hot(obs))).

    Args:
        caps: the largest value of each observation component the policy distinguishes (larger
            values are clipped to it); the one-hot has caps + 1 entries per component.
        num_actions: size of the Discrete action space.
        hidden: width of the hidden layer (0: a linear softmax policy).
        seed: seeds the initial weights (drawn inside `torch.random.fork_rng`: global state untouched)
            and is the base seed of `act`'s sampling: `reset(seed=s)` re-derives the generator from
            it and s (`ttc_gym.agent.problem_seed`), so the actions on a problem depend on that
            problem's seed only; `reset()` (no seed) carries on with the current generator.
        greedy: `act` takes the most likely action instead of sampling.
    """

    def __init__(self, caps, num_actions: int, hidden: int = 64, seed: int = 0, greedy: bool = False):
        super().__init__()
        caps = np.asarray(caps, dtype=np.int64).reshape(-1)
        if caps.size == 0 or (caps < 0).any():
            raise ValueError(f"caps must be a non-empty list of non-negative ints, got {caps.tolist()}.")
        self.num_actions = check_int("num_actions", num_actions, minimum=1)
        self.hidden = check_int("hidden", hidden, minimum=0)
        self.seed = check_int("seed", seed, minimum=0)
        self.greedy = bool(greedy)
        self.register_buffer("caps", torch.as_tensor(caps))
        self.register_buffer("offsets", torch.as_tensor(np.concatenate([[0], np.cumsum(caps + 1)[:-1]])))
        self.num_features = int((caps + 1).sum())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.hidden:
                self.net = nn.Sequential(
                    nn.Linear(self.num_features, self.hidden), nn.Tanh(), nn.Linear(self.hidden, self.num_actions)
                )
            else:
                self.net = nn.Sequential(nn.Linear(self.num_features, self.num_actions))
            # Start close to uniform: a small last layer.
            last = self.net[-1]
            nn.init.normal_(last.weight, std=0.01)
            nn.init.zeros_(last.bias)
        self._generator = torch.Generator().manual_seed(self.seed)

    @classmethod
    def for_space(
        cls, observation_space: spaces.Space, action_space: spaces.Space, *, time_fields: tuple[int, ...] = (0, 4), **kwargs
    ) -> SimPolicy:
        """A policy for these spaces. `time_fields` (TTC-Sim-v0: episodes used, attempts) are capped
        at nvec - 2, the last value an episode still acts at (nvec - 1 = H only comes with the end)."""
        if not (isinstance(observation_space, spaces.MultiDiscrete) and observation_space.nvec.ndim == 1):
            raise TypeError(f"SimPolicy needs a 1-D MultiDiscrete observation space, got {observation_space}.")
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"SimPolicy needs a Discrete action space, got {action_space}.")
        caps = observation_space.nvec.astype(np.int64) - 1
        for i in time_fields:
            caps[i] = max(caps[i] - 1, 0)
        return cls(caps, int(action_space.n), **kwargs)

    # -- the distribution -------------------------------------------------------------------------
    def features(self, obs) -> torch.Tensor:
        obs = torch.as_tensor(np.asarray(obs), dtype=torch.int64).reshape(-1, self.caps.numel())
        idx = torch.minimum(obs.clamp(min=0), self.caps) + self.offsets
        x = torch.zeros(obs.shape[0], self.num_features)
        x.scatter_(1, idx, 1.0)
        return x

    def logits(self, obs) -> torch.Tensor:
        return self.net(self.features(obs))

    def log_probs_all(self, obs) -> torch.Tensor:
        """(B, num_actions) log-probabilities of every action."""
        return torch.log_softmax(self.logits(obs), dim=-1)

    def log_prob(self, obs, actions) -> torch.Tensor:
        """(B,) log pi(actions | obs), with gradient."""
        a = torch.as_tensor(np.asarray(actions), dtype=torch.int64).reshape(-1, 1)
        return self.log_probs_all(obs).gather(1, a).squeeze(1)

    @torch.no_grad()
    def sample(self, obs, generator: torch.Generator | None = None, greedy: bool | None = None) -> np.ndarray:
        """(B,) actions, sampled with `generator` (default: the policy's own), or the argmax if greedy."""
        logits = self.logits(obs)
        if self.greedy if greedy is None else greedy:
            return logits.argmax(dim=-1).numpy()
        # Inverse-CDF sampling: one uniform per row (faster than torch.multinomial on small batches).
        cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
        u = torch.rand(cdf.shape[0], 1, generator=generator or self._generator)
        return (cdf < u).sum(dim=-1).clamp(max=self.num_actions - 1).numpy()

    # -- the agent API ----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start a problem; with `seed`, `act` samples from a generator seeded by
        `problem_seed(self.seed, seed)` (the protocol of `ttc_gym.agent`)."""
        if seed is not None:
            self._generator = torch.Generator().manual_seed(problem_seed(self.seed, seed))

    def act(self, obs, info: dict | None = None) -> int:
        return int(self.sample(obs)[0])

    # -- checkpoints ------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"caps": self.caps.tolist(), "num_actions": self.num_actions, "hidden": self.hidden, "seed": self.seed}

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write the weights and constructor arguments (plus `extra`, e.g. the training config).

        Atomic: the checkpoint is written to a temporary file next to `path`, then renamed over it, so
        a process killed while saving leaves the previous checkpoint (or none), never a torn one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        blob = {"format": CHECKPOINT_FORMAT, "config": self.config(), "state_dict": self.state_dict(), "extra": extra or {}}
        try:
            with open(tmp, "wb") as handle:
                torch.save(blob, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @staticmethod
    def read_checkpoint(path: str | Path) -> dict:
        """The checkpoint file's contents (format, config, state_dict, extra), checked to be one."""
        try:
            blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for a file that is not a checkpoint
            raise ValueError(f"{path} is not a SimPolicy checkpoint: {err}") from err
        if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a SimPolicy checkpoint (expected format {CHECKPOINT_FORMAT!r}).")
        return blob

    @classmethod
    def load(cls, path: str | Path, greedy: bool = False) -> SimPolicy:
        blob = cls.read_checkpoint(path)
        policy = cls(**blob["config"], greedy=greedy)
        policy.load_state_dict(blob["state_dict"])
        return policy

    def clone(self) -> SimPolicy:
        """An independent copy (e.g. the frozen reference policy of the KL term)."""
        twin = type(self)(**self.config(), greedy=self.greedy)
        twin.load_state_dict(self.state_dict())
        return twin
