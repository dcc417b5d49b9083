"""TTC-Replay-v0: meta-decisions (continue, switch, answer) over stored, analysed reasoning traces."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttc_gym.actions import MetaAction, check_meta_action
from ttc_gym.budget import Budget
from ttc_gym.envs.math_meta import (
    DOWN,
    MAJORITY_CHANGED,
    MAJORITY_SAME,
    MAJORITY_UNKNOWN,
    SAME,
    TOKEN_BUCKETS,
    UP,
)
from ttc_gym.envs.replay_data import ReplayData, ReplayPoint, ReplayProblem, ReplayTrace, load_replay_data
from ttc_gym.rewards import check_alpha, compose_reward, progress_between, reward_info
from ttc_gym.traces import TRACE_DATA
from ttc_gym.validation import check_float, check_int, check_render_mode, did_you_mean

DEFAULT_DATA = TRACE_DATA / "smollm2_procedural.jsonl"  # the default model's shipped set
OBS_FIELDS = ("episodes_used", "agreement", "agreement_change", "majority_changed", "token_bucket", "last_action",
              "trace_ended")
NO_ACTION = len(MetaAction)  # `last_action` at reset


@dataclass(frozen=True)
class ReplaySettings:
    """The validated arguments of TTC-Replay-v0 that shape its rewards and budget (see its docstring)."""

    alpha: float = 1.0
    episode_cost: float = 0.0
    max_episodes: int = 8
    max_tokens: int | None = None
    answer_on_truncation: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        check_float("episode_cost", self.episode_cost, minimum=0.0)
        check_int("max_episodes (H)", self.max_episodes, minimum=1)
        if not isinstance(self.answer_on_truncation, bool):
            raise TypeError(f"answer_on_truncation must be a bool, got {self.answer_on_truncation!r}.")
        Budget(max_episodes=self.max_episodes, max_tokens=self.max_tokens)  # checks max_tokens

    @property
    def budget(self) -> Budget:
        return Budget(max_episodes=self.max_episodes, max_tokens=self.max_tokens)


def load_data(data: Any) -> ReplayData:
    """`load_replay_data`, with a file read once per process while it is unchanged (a vector env
    builds many copies of the env)."""
    if isinstance(data, (str, os.PathLike)) and Path(data).is_file():
        stat = Path(data).stat()
        return _load_file(str(Path(data).resolve()), stat.st_mtime_ns, stat.st_size)
    return load_replay_data(data)


@functools.lru_cache(maxsize=8)
def _load_file(path: str, mtime_ns: int, size: int) -> ReplayData:
    return load_replay_data(path)


class TTCReplayEnv(gym.Env):
    """
    ## Description

    Meta-decisions about test-time compute on *real* reasoning, replayed at simulator speed. The env
    holds an analysed trace set (`ttc_gym.envs.replay_data`: traces that a model wrote, split into
    episodes, with the prover's K forced answers, their grades and J after every prefix;
    docs/formulation.md §2, §6). Each problem offers one or more stored traces. Each step the agent
    decides, as on TTC-MathMeta-v0: reveal the next stored episode of the current trace, switch to
    another stored trace of the same problem, or answer now, committing one of the stored forced
    answers at the current prefix. Nothing is generated, so tabular agents, the DP oracle
    (`ttc_gym.agents.oracle.ReplayOracle`, computed over the stored traces) and stable-baselines3
    learn when to stop and when to switch on real LLM reasoning in seconds.

    ## Action Space

    `Discrete(4)` (`ttc_gym.actions.MetaAction`, the meanings of TTC-Sim-v0 and TTC-MathMeta-v0, so the
    same agents run on all three):

    - 0 **continue**: reveal the next stored episode of the current trace (one episode spent, its
      stored token count added). When the current trace has no episode left (the model stopped
      thinking there) continue commits an answer exactly as `answer` does.
    - 1 **switch**: leave the current trace and move to another stored trace of the same problem,
      drawn uniformly (with `np_random`) among the problem's other traces, and reveal *its first
      episode* (one episode spent, that episode's tokens added; the trace's start when it has none).
      The episodes of the left trace are dropped from the reasoner's context: J, the forced answers
      and the observation are those of the new trace's first prefix, and the progress is the J of
      that prefix minus the J left behind. With one trace, switch restarts it from its first episode.
    - 2 **verify**: a stored trace cannot be steered into a check, so verify reveals the next stored
      episode exactly as continue does (it exists so that agents of the other envs run unchanged).
    - 3 **answer**: commit a forced answer drawn uniformly (with `np_random`) among the stored forced
      answers of the current prefix that have a grade; no episode is spent. It is correct with
      probability `p_correct` = (# graded correct) / (# graded), which is J when all K are graded.

    ## Observation Space

    `MultiDiscrete([H+1, K+1, 3, 3, 9, 5, 2])` (fields `OBS_FIELDS`, also `env.unwrapped.obs_fields`; K
    the largest number of forced answers of any prefix in the set): the fields of TTC-MathMeta-v0 —
    episodes used; **agreement**, how many of the stored forced answers of the current prefix equal
    their most common answer (0 when none gave an answer); agreement change against the previous
    observation (0 down, 1 same, 2 up; 1 at reset); majority changed (0 the same most common answer, 1
    another, 2 nothing to compare); tokens used in eighths of the token budget (of `max_tokens`, or of H
    x the set's mean episode tokens when there is none); the last action (4 = none yet) — plus **trace
    ended**: 1 when the current trace has no stored episode left (the model stopped thinking there),
    else 0.

    **No gold.** Every field is what a deployed reasoner has: its counts, its own forced answers
    compared with one another (never graded), and whether it stopped (docs/formulation.md §3). J, the
    grades, and which stored trace or problem this is are not observed; J is in `info` only, and a
    policy that reads it is an oracle.

    ## Rewards

    Every step: `outcome + alpha * progress - cost` (`ttc_gym.rewards.compose_reward`), with
    `progress = J_new - J_prev` from the stored J of the prefixes (0 when answering), `cost =
    episode_cost` per episode spent (continue, verify, switch), and `outcome` the grade of the committed
    forced answer on the final step (0 before). Progress telescopes to J_final - J_0 over a rollout.

    ## Starting State

    A problem drawn uniformly with `np_random` from the selected problems (`split`, `problems`), and one
    of its stored traces drawn uniformly, at its empty prefix: nothing spent, J = J_0 of that trace.
    `reset(options={"problem_id": id})` chooses the problem, `{"trace_id": tid}` (with it) the trace.
    `{"problem_id": id, "trace_id": tid, "prefix_episodes": k}` starts k episodes into that trace, as
    k continue steps from its start would leave it (the stored prefix as a partial rollout, e.g. for
    MRT's branch-from-a-prefix recipe): the budget counts them (`info["episodes_used"] == k`,
    `info["tokens_used"]` their stored tokens), `info["J"]` is the stored J there,
    `info["trace_position"] == k`, and the first step's progress is relative to it. With the same seed,
    stepping on gives the same rewards, J and budget as the rollout from `reset(seed=s,
    options={"problem_id": id, "trace_id": tid})` after k continue steps: neither draws from
    `np_random` before that point, so a later answer or switch draws the same (a rollout whose reset
    drew its problem and trace has made two draws more, and may answer or switch differently; its J
    and budget at the prefix are the same). k counts decision points, as
    continue does (an ungraded prefix skipped, see below, is part of the next one): 0 <= k <
    `len(trace.points)`, and it must leave budget for one more episode (k < H and, with `max_tokens`,
    fewer tokens than C0); otherwise, or without both ids, a ValueError / TypeError says what came,
    before anything is touched. The observation there is a reset's (agreement change 1, majority
    changed 2, last action 4); `info["J_prefix_start"]` (at every reset) is the trace's J_0.

    **Ungraded prefixes** (J null in the file) are never taken as wrong: such a prefix is skipped (the
    step reveals the episodes up to the next graded prefix, tokens summed, as one episode), trailing
    ungraded prefixes are dropped (the trace ends at its last graded one), an ungraded empty prefix takes
    a sibling trace's, and a problem without any graded empty prefix is left out
    (`env.unwrapped.dataset.skipped` says which and why). See `ttc_gym.envs.replay_data`.

    ## Episode End

    Terminated on answer (or continue / verify on a trace that ended). Truncated once H episodes
    (`max_episodes`) or C0 tokens (`max_tokens`) are spent — a stored episode is revealed whole, so the
    last one may pass C0 — with a forced answer at the prefix reached (graded as `answer`, also
    terminated) when `answer_on_truncation=True`, as the math envs do.

    ## Arguments

    `gym.make("TTC-Replay-v0", **kwargs)`, all optional:
    `data` (a path to a JSONL file of analysed traces, format "ttc-gym/analysed-trace/v1", or a list of
    such rows as dicts; default `DEFAULT_DATA`: `smollm2_procedural.jsonl`, the default model's set
    shipped in `ttc_gym/data/traces/`, whose README says how it was made);
    `split` ("all", "train" or "test": a deterministic split of the problems by a hash of their
    problem_id, `ttc_gym.envs.replay_data.split_of`), `test_fraction` (0.3), `split_seed` (0);
    `problems` (a list of problem_ids to keep, within the split); `max_episodes` (H, 8); `max_tokens`
    (C0, None); `alpha` (1.0); `episode_cost` (0.0); `answer_on_truncation` (True); `render_mode` (None
    or "ansi"). Bad data raises `ReplayDataError` naming the file, line, field, what was expected and
    what came.

    Accessors (on `env.unwrapped`): `dataset` (the selected `ReplayData`), `settings`
    (`ReplaySettings`), `problem` and `trace` (the current `ReplayProblem` and `ReplayTrace`, to read).

    `info` on every step: J, progress, outcome, alpha, cost, reward, episodes_used, tokens_used,
    answered (as every env), J_prefix_start (at reset only: the trace's J_0), plus problem_id, trace_id,
    trace_index (in the problem's traces), trace_position (the decision point in the trace, 0 = empty
    prefix), trace_ended, episode_tokens, tokens_left, prover_answers (the stored forced answers),
    prover_correct, committed_answer, and gold_answer once answered. Gold-derived (for rewards and
    analysis only; a policy that reads them is an oracle): J, J_prefix_start, progress, outcome, reward,
    prover_correct, gold_answer. Gold-free: the others.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    obs_fields = OBS_FIELDS  # the observation's field names, in order (agents that aggregate state name fields by them)

    def __init__(self, data: Any = None, split: str = "all", test_fraction: float = 0.3, split_seed: int = 0,
                 problems: Any = None, max_episodes: int = 8, max_tokens: int | None = None, alpha: float = 1.0,
                 episode_cost: float = 0.0, answer_on_truncation: bool = True, render_mode: str | None = None):
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.settings = ReplaySettings(alpha, episode_cost, max_episodes, max_tokens, answer_on_truncation)
        check_int("split_seed", split_seed)
        self.dataset: ReplayData = load_data(DEFAULT_DATA if data is None else data).select(
            split, test_fraction=test_fraction, split_seed=split_seed, problems=problems)
        H, K = self.settings.max_episodes, self.dataset.num_answers
        self.observation_space = spaces.MultiDiscrete([H + 1, K + 1, 3, 3, TOKEN_BUCKETS + 1, NO_ACTION + 1, 2])
        self.action_space = spaces.Discrete(len(MetaAction))
        self._budget = self.settings.budget
        self._token_scale = max_tokens or max(1, round(H * self.dataset.mean_episode_tokens))
        self.problem: ReplayProblem | None = None
        self.trace: ReplayTrace | None = None
        self._done = True
        self._lines: list[str] = []

    # -- the gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        problem_id, trace_id, position = _reset_options(options)
        # Bad options raise before anything is touched (the rng included).
        problem = None if problem_id is None else self.dataset.problem(problem_id)
        index = None
        if trace_id is not None:
            if problem is None:
                raise ValueError("reset option 'trace_id' needs 'problem_id' too (trace ids are per problem).")
            ids = [t.trace_id for t in problem.traces]
            if trace_id not in ids:
                raise ValueError(f"problem {problem.problem_id!r} has no trace {trace_id!r}; its traces: {ids}.")
            index = ids.index(trace_id)
        tokens = 0
        if position:
            tokens = self._check_prefix(problem, index, position)
        super().reset(seed=seed)
        rng = self.np_random
        if problem is None:
            problem = self.dataset.problems[int(rng.integers(len(self.dataset.problems)))]
        if index is None:
            index = int(rng.integers(len(problem.traces)))
        self.problem, self._index, self.trace, self._pos = problem, index, problem.traces[index], position
        self._episodes, self._tokens = position, tokens
        self._done = False
        point = self.trace.points[position]
        self._previous = None
        start = self.trace.points[0]
        self._lines = [f"problem {problem.problem_id}, trace {self.trace.trace_id}: J_0 = {start.j:.2f}"]
        if position:
            self._lines.append(f"  prefix: {position} episodes ({point.episodes} stored) J={point.j:.2f}")
        info = self._info(point, 0.0, 0.0, 0.0, False, None, 0)
        info["J_prefix_start"] = start.j
        return self._obs(point, NO_ACTION), info

    def step(self, action):
        if self._done:
            raise RuntimeError("TTCReplayEnv.step called before reset() or after the episode ended; call reset() first.")
        action = check_meta_action(self.action_space, action)
        trace, point = self.trace, self.trace.points[self._pos]
        ended = self._pos == len(trace.points) - 1
        if action == MetaAction.ANSWER or (ended and action != MetaAction.SWITCH):
            outcome, committed = self._commit(point)
            return self._finish(point, action, 0.0, outcome, 0.0, True, False, committed, 0)
        if action == MetaAction.SWITCH:
            others = [i for i in range(len(self.problem.traces)) if i != self._index] or [self._index]
            self._index = others[int(self.np_random.integers(len(others)))]
            self.trace = self.problem.traces[self._index]
            self._pos = min(1, len(self.trace.points) - 1)
            new = self.trace.points[self._pos]
            episode_tokens = new.tokens
        else:
            self._pos += 1
            new = trace.points[self._pos]
            episode_tokens = new.tokens - point.tokens
        s = self.settings
        self._episodes += 1
        self._tokens += episode_tokens
        progress = progress_between(point.j, new.j)
        truncated = self._budget.exhausted(self._episodes, self._tokens)
        outcome, committed, terminated = 0.0, None, False
        if truncated and s.answer_on_truncation:
            terminated = True
            outcome, committed = self._commit(new)
        return self._finish(new, action, progress, outcome, s.episode_cost, terminated, truncated, committed,
                            episode_tokens)

    def render(self):
        if self.render_mode == "ansi":
            return "\n".join(self._lines) + "\n"
        return None

    # -- helpers ---------------------------------------------------------------------------------
    def _check_prefix(self, problem: ReplayProblem, index: int, position: int) -> int:
        """The tokens of the first `position` episodes of trace `index`, once they are checked to be a
        prefix a rollout can go on from (within the trace, leaving budget for one more episode)."""
        trace = problem.traces[index]
        last = len(trace.points) - 1
        if position > last:
            raise ValueError(f"reset option 'prefix_episodes' is {position}, but trace {trace.trace_id!r} of problem "
                             f"{problem.problem_id!r} has {last} episodes after its start (decision points "
                             f"0..{last}): give at most {last}.")
        tokens = trace.points[position].tokens - trace.points[0].tokens
        if self._budget.exhausted(position, tokens):
            raise ValueError(
                f"reset option 'prefix_episodes' is {position} ({tokens:,} tokens), which uses up the budget "
                f"(max_episodes={self.settings.max_episodes}, max_tokens={self.settings.max_tokens}): the rollout "
                f"would have ended there; a prefix must leave room for at least one more episode."
            )
        return tokens

    def _commit(self, point: ReplayPoint) -> tuple[float, str | None]:
        """A stored forced answer with a grade, drawn uniformly: (its 0/1 grade, the answer)."""
        i = point.graded[int(self.np_random.integers(len(point.graded)))]
        return float(point.correct[i]), point.answers[i]

    def _finish(self, point, action, progress, outcome, cost, terminated, truncated, committed, episode_tokens):
        reward = compose_reward(outcome, progress, self.settings.alpha, cost)
        answered = terminated
        info = self._info(point, progress, outcome, cost, answered, committed, episode_tokens)
        obs = self._obs(point, action)
        if self.render_mode == "ansi":
            name = MetaAction(action).name.lower()
            self._lines.append(f"{name:>8}: trace {self.trace.trace_id} prefix {point.episodes} J={point.j:.2f} "
                               f"progress={progress:+.2f}" + (f" outcome={outcome:.0f}" if answered else ""))
        self._done = terminated or truncated
        return obs, reward, terminated, truncated, info

    def _obs(self, point: ReplayPoint, last_action: int) -> np.ndarray:
        """Gold-free: counts, the agreement of the stored forced answers and its change, trace ended."""
        change, majority = SAME, MAJORITY_UNKNOWN
        previous = self._previous
        if previous is not None:
            change = DOWN if point.agreement < previous.agreement else (UP if point.agreement > previous.agreement
                                                                        else SAME)
            if point.majority is not None and previous.majority is not None:
                majority = MAJORITY_SAME if point.majority == previous.majority else MAJORITY_CHANGED
        self._previous = point
        tokens = min(TOKEN_BUCKETS, self._tokens * TOKEN_BUCKETS // self._token_scale)
        ended = int(self._pos == len(self.trace.points) - 1)
        return np.array([self._episodes, point.agreement, change, majority, tokens, last_action, ended],
                        dtype=np.int64)

    def _info(self, point, progress, outcome, cost, answered, committed, episode_tokens) -> dict:
        s = self.settings
        info = reward_info(j=point.j, progress=progress, outcome=outcome, alpha=s.alpha, cost=cost,
                           episodes_used=self._episodes, tokens_used=self._tokens, answered=answered)
        info.update(
            problem_id=self.problem.problem_id, trace_id=self.trace.trace_id, trace_index=self._index,
            trace_position=self._pos, trace_ended=self._pos == len(self.trace.points) - 1,
            episode_tokens=episode_tokens, tokens_left=self._budget.tokens_left(self._tokens),
            prover_answers=point.answers, prover_correct=point.correct, committed_answer=committed,
        )
        if answered:
            info["gold_answer"] = self.problem.answer
        return info


def _reset_options(options: dict | None) -> tuple[str | None, str | None, int]:
    """(problem_id, trace_id, prefix_episodes) of `reset`'s options, their types checked (0: no prefix)."""
    if options is None:
        return None, None, 0
    if not isinstance(options, dict):
        raise TypeError(f"reset options must be a dict, got {type(options).__name__}: {options!r:.80}.")
    allowed = ("problem_id", "trace_id", "prefix_episodes")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        hint = did_you_mean(unknown[0], allowed)
        if "prefix" in unknown:
            hint += " A stored trace's prefix is given by its ids and a count, 'prefix_episodes': k, not by texts."
        raise ValueError(f"reset options accept only {', '.join(map(repr, allowed))}, got {sorted(options)}.{hint}")
    ids = options.get("problem_id"), options.get("trace_id")
    for name, value in zip(("problem_id", "trace_id"), ids):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"reset option {name!r} must be a string, got {value!r}.")
    position = options.get("prefix_episodes")
    if position is None:
        return (*ids, 0)
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
        raise TypeError(f"reset option 'prefix_episodes' must be an int (episodes into the trace), got "
                        f"{type(position).__name__}: {position!r:.80}.")
    if position < 0:
        raise ValueError(f"reset option 'prefix_episodes' must be >= 0, got {position}.")
    if position and None in ids:
        raise ValueError("reset option 'prefix_episodes' needs 'problem_id' and 'trace_id' too: it starts that "
                         f"stored trace k episodes in; got problem_id={ids[0]!r}, trace_id={ids[1]!r}.")
    return (*ids, int(position))
