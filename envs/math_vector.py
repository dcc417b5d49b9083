"""TTC-Math-v0 vectorized: `gym.make_vec("TTC-Math-v0", num_envs=8, vectorization_mode="vector_entry_point")`.

Same problems, rewards, spaces and `info` as `ttc_gym.envs.math_text.TTCMathEnv` (its docstring is the spec),
for `num_envs` traces over ONE engine and ONE prover (the model is loaded once). What it adds is
batching: each `step` runs the prover for every sub-env in one `LLMProver.estimate_many` call — one
engine call for all sub-envs' K forced answers, each (problem, prefix) with its own seed (and, when
the prover is not the policy, one policy call for the forced answers of the sub-envs whose budget
ends) — and
a `ttc_gym.agents.llm.LLMAgent` writes every sub-env's next episode in one engine call with
`act_batch(*unbatch(obs, infos))`.

Seeding and autoreset follow Gymnasium's `SyncVectorEnv` exactly, so that
`gym.make_vec(..., vectorization_mode="sync")` — a loop over single envs, with the same
`vector_kwargs={"autoreset_mode": ...}` — gives the same results:
- `reset(seed=s)` seeds sub-env i's own random generator with `s + i` (a list seeds each sub-env
  with its entry; None keeps each sub-env's generator, or draws a fresh one the first time), as
  `TTCMathEnv.reset(seed=s + i)` would (`gymnasium.utils.seeding.np_random`);
- sub-env i draws each problem with its own generator (`source.sample(rng_i)`) unless `reset` is
  given it: `options={"problem": p}` gives every sub-env the problem `p`, `options={"problems":
  [p_0, ..., p_{n-1}]}` gives sub-env i the problem `p_i` (an entry None: it draws its own), as
  `TTCMathEnv.reset(options={"problem": p_i})` would;
- `options={"problems": [...], "prefixes": [x_0, ..., x_{n-1}]}` starts sub-env i's trace after the
  episode texts x_i (a list; None or [] for no prefix), as `TTCMathEnv.reset(options={"problem": p_i,
  "prefix": x_i})` would (its Starting State is the spec: J at the prefix in `infos["J"][i]`, J_0 in
  `infos["J_prefix_start"][i]`, the budget counting the prefix); `options={"problem": p, "prefix": x}`
  gives every sub-env the same. A sub-env with a prefix needs a given problem. Every entry is checked
  before anything is touched (also those a `reset_mask` leaves out, whose problem and prefix are
  ignored, as their problems are). Each reset sub-env's J_0 and J at its prefix come from one prover
  batch;
- `options={"reset_mask": mask}` (a bool array of shape `(num_envs,)`, at least one True) resets
  only the sub-envs where `mask` is True; the others keep their trace, and the returned infos hold
  only the reset sub-envs' (their `_key` masks are False for the others);
- the prover's samples depend only on `prover_seed` and the (problem, prefix), never on which
  sub-envs share a batch.

Autoreset (`autoreset_mode`, a constructor argument, also in `metadata["autoreset_mode"]`):
- "next_step" (default, `AutoresetMode.NEXT_STEP`): on the `step` after a sub-env's problem ended,
  that sub-env draws a new problem, ignores its action and returns the new problem's first
  observation with reward 0, not terminated, not truncated.
- "disabled" (`AutoresetMode.DISABLED`): a sub-env whose problem ended stays ended until a `reset`
  (with a `reset_mask`, or of all sub-envs). Its action must be None meanwhile (any other action is
  a ValueError; None for a running sub-env too): stepping it does nothing — it keeps its last
  observation and reports reward 0, terminated = truncated = False and no info (its `_key` masks
  are False). So a client rolls out a batch of problems of different lengths to their ends with
  `step([text or None for each sub-env])` (Gymnasium's own `SyncVectorEnv` asserts instead; with
  None actions it could not step the unfinished sub-envs alone).

Observations and infos are batched with Gymnasium's own helpers (`concatenate`, `_add_info`):
`obs["problem"][i]`, `obs["episodes"][i]`, `infos["J"][i]`, ...

Accessors: `engine` and `prover` (shared by all sub-envs), `template` and `traces` (a tuple, one
per sub-env, read-only views as `TTCMathEnv.trace`), as documented in `TTCMathEnv`'s Arguments.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from ttc_gym.envs.math_core import MathSettings, MathTrace, check_episode_text, check_prefix, check_reset_options
from ttc_gym.envs.math_text import text_observation_space
from ttc_gym.problems import Problem, as_problem
from ttc_gym.prompts import PromptTemplate
from ttc_gym.spaces import AnyText
from ttc_gym.validation import check_int, check_render_mode

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "disabled": AutoresetMode.DISABLED}


def check_autoreset_mode(mode: Any) -> AutoresetMode:
    """"next_step" or "disabled" (or the `AutoresetMode` / its value, e.g. "NextStep")."""
    if isinstance(mode, AutoresetMode):
        found = mode
    else:
        found = AUTORESET_MODES.get(mode) if isinstance(mode, str) else None
        if found is None and isinstance(mode, str):
            found = next((m for m in AutoresetMode if m.value == mode), None)
    if found not in AUTORESET_MODES.values():
        raise ValueError(f"autoreset_mode must be one of {sorted(AUTORESET_MODES)}, got {mode!r}.")
    return found


def check_reset_mask(mask: Any, num_envs: int) -> np.ndarray:
    """Gymnasium's `reset_mask`: a numpy bool array of shape (num_envs,) with at least one True."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (num_envs,):
        raise ValueError(
            f"options['reset_mask'] must be a numpy bool array of shape ({num_envs},), got {mask!r:.80}."
        )
    if not mask.any():
        raise ValueError(f"options['reset_mask'] must reset at least one sub-env, got {mask!r}.")
    return mask


class TTCMathVectorEnv(VectorEnv):
    """`num_envs` TTC-Math-v0 traces stepped together; see the module docstring.

    Args: `num_envs`, `autoreset_mode` ("next_step", default, or "disabled"), `render_mode` (None
    or "ansi": `render()` returns each sub-env's trace) and every keyword argument of TTC-Math-v0
    (source, engine, prover_engine, num_prover_samples, ...).
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}
    env_id = "TTC-Math-v0"  # named in argument errors (a registered variant names its own)

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, autoreset_mode: Any = "next_step",
                 **kwargs: Any):
        self.num_envs = check_int("num_envs", num_envs, minimum=1)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.autoreset_mode = check_autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self._settings = MathSettings.from_kwargs(self.env_id, kwargs)
        self._source, self.engine, self.prover = self._settings.build()
        self.single_observation_space = text_observation_space(self._settings.max_episode_chars)
        self.single_action_space = AnyText(self._settings.max_episode_chars, min_length=1)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._traces: list[MathTrace | None] = [None] * self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._ended = np.zeros(self.num_envs, dtype=bool)  # the last step ended the sub-env's problem
        self._observations = create_empty_array(self.single_observation_space, self.num_envs)

    # -- helpers ----------------------------------------------------------------------------------

    def _sub_seeds(self, seed: Any) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for num_envs={self.num_envs}; give one per sub-env.")
        return seeds

    def _per_sub_env(self, options: dict, one: str, many: str, what: str, not_a_sequence: tuple) -> list:
        """`options[many]` (one entry per sub-env; `what` says what they are in the error) or
        `options[one]` for every sub-env (None when absent), never both."""
        if many not in options:
            return [options.get(one)] * self.num_envs
        if one in options:
            raise ValueError(f"reset options take '{one}' (one for all sub-envs) or '{many}' (one per "
                             f"sub-env), not both.")
        given = options[many]
        if isinstance(given, not_a_sequence) or not isinstance(given, Sequence) or len(given) != self.num_envs:
            raise ValueError(f"options['{many}'] must be a sequence of {self.num_envs} {what}, got {given!r:.120}.")
        return list(given)

    def _given_problems(self, options: dict) -> list[Problem | None]:
        """The problem `reset` options give each sub-env (None: it draws its own)."""
        problems = self._per_sub_env(options, "problem", "problems", "problems (one per sub-env, None to draw one)",
                                     (str, Problem))
        return [None if p is None else as_problem(p, f"the problem of sub-env {i}") for i, p in enumerate(problems)]

    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random()
        return self._rngs[i]

    def _given_prefixes(self, options: dict, problems: list[Problem | None]) -> list[tuple[tuple, tuple]]:
        """Each sub-env's (prefix texts, their tokens) from the `reset` options (empty: no prefix),
        every entry checked as `TTCMathEnv.reset` checks its "prefix"."""
        given = self._per_sub_env(options, "prefix", "prefixes", "prefixes (one per sub-env: a list of episode "
                                  "texts, or None for none)", (str, dict))
        names = ([f"options['prefixes'][{i}]" for i in range(self.num_envs)] if "prefixes" in options
                 else ["options['prefix']"] * self.num_envs)
        out = []
        for i, (prefix, name) in enumerate(zip(given, names)):
            if prefix is None:
                out.append(((), ()))
                continue
            if problems[i] is None:
                raise ValueError(f"{name} needs a problem for sub-env {i}: the episodes of a prefix were written for "
                                 f"a problem; give it in options['problems'][{i}] (or options['problem']).")
            out.append(check_prefix(prefix, self._settings, self.engine.count_tokens,
                                    max_chars=self._settings.max_episode_chars, name=name))
        return out

    def _new_trace(self, problem: Problem, prefix: Sequence[str] = (), tokens: Sequence[int] = ()) -> MathTrace:
        return MathTrace(self._settings, self.prover, self.engine.count_tokens, problem, prefix, tokens)

    def _obs(self, i: int) -> dict:
        trace = self._traces[i]
        return {"problem": trace.problem.question, "episodes": tuple(trace.episodes)}

    def _batched_obs(self) -> Any:
        self._observations = concatenate(
            self.single_observation_space, [self._obs(i) for i in range(self.num_envs)], self._observations
        )
        return self._observations

    # -- accessors --------------------------------------------------------------------------------

    @property
    def template(self) -> PromptTemplate:
        """The prompts this env builds (an agent that writes episodes for it must use the same)."""
        return self._settings.template

    @property
    def traces(self) -> tuple[MathTrace | None, ...]:
        """Each sub-env's current trace (None before the first reset): to read, as `TTCMathEnv.trace`."""
        return tuple(self._traces)

    # -- the vector API ---------------------------------------------------------------------------

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        seeds = self._sub_seeds(seed)
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        options = dict(check_reset_options(options, ("problem", "problems", "prefix", "prefixes", "reset_mask")))
        mask = options.pop("reset_mask", None)
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else check_reset_mask(mask, self.num_envs)
        given = self._given_problems(options)
        prefixes = self._given_prefixes(options, given)
        if any(t is None for t, m in zip(self._traces, mask) if not m):
            raise RuntimeError("reset(options={'reset_mask': ...}) before a first reset of every sub-env; "
                               "call reset() without a mask first.")
        problems = {}
        for i in np.flatnonzero(mask):
            if seeds[i] is not None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
            problems[i] = given[i] if given[i] is not None else self._source.sample(self._rng(i))
        # Every new trace's J_0, and J at its prefix, from one prover batch (memoized: the traces read
        # them without a call).
        self.prover.estimate_many([(p, ()) for p in problems.values()]
                                  + [(p, prefixes[i][0]) for i, p in problems.items() if prefixes[i][0]])
        infos: dict = {}
        for i, problem in problems.items():
            self._traces[i] = self._new_trace(problem, *prefixes[i])
            self._ended[i] = False
            infos = self._add_info(infos, self._traces[i].reset_info(), i)
        return self._batched_obs(), infos

    def step(self, actions: Sequence[str | None]):
        if any(t is None for t in self._traces):
            raise RuntimeError("TTCMathVectorEnv.step called before reset(); call reset() first.")
        if isinstance(actions, str) or len(actions) != self.num_envs:
            raise ValueError(
                f"actions must be a sequence of {self.num_envs} episode texts (one per sub-env), got {actions!r:.120}."
            )
        disabled = self.autoreset_mode == AutoresetMode.DISABLED
        if disabled:
            for i, action in enumerate(actions):
                if self._ended[i] and action is not None:
                    raise ValueError(
                        f"sub-env {i}'s problem has ended and autoreset_mode='disabled': its action must be None "
                        f"until it is reset (reset(options={{'reset_mask': ...}})), got {action!r:.80}."
                    )
                if not self._ended[i] and action is None:
                    raise ValueError(f"sub-env {i} is still running: its action must be an episode text, got None.")
        texts = {
            i: check_episode_text(actions[i], self._settings.max_episode_chars)
            for i in range(self.num_envs) if not self._ended[i]
        }
        # A step that raises (the engine, a prompt over its context) changes nothing: the sub-envs'
        # generators and traces are put back as they were.
        rng_states = [self._rng(i).bit_generator.state for i in range(self.num_envs)]
        traces = list(self._traces)
        snapshots = [t.snapshot() for t in traces]
        try:
            return self._step(texts, disabled)
        except BaseException:
            for i in range(self.num_envs):
                self._rng(i).bit_generator.state = rng_states[i]
                traces[i].restore(snapshots[i])
            self._traces = traces
            raise

    def _step(self, texts: dict[int, str], disabled: bool):
        restart = {} if disabled else {
            i: self._source.sample(self._rng(i)) for i in range(self.num_envs) if self._ended[i]
        }
        # One prover batch for every sub-env: new problems' J_0 and each trace's next prefix. The
        # estimates are memoized, so the traces below read them without another engine call.
        self.prover.estimate_many(
            [(p, ()) for p in restart.values()]
            + [(self._traces[i].problem, (*self._traces[i].episodes, text)) for i, text in texts.items()]
        )
        # The episodes' tokens under the policy's tokenizer, and, when the prover is not the policy,
        # one policy batch of the forced answers of every trace that the budget ends now (memoized).
        tokens = {i: self.engine.count_tokens(text) for i, text in texts.items()}
        if self._settings.answer_on_truncation and not self.prover.is_policy:
            ending = [i for i, text in texts.items() if self._traces[i].ends_by_budget(text, tokens[i])]
            self.prover.policy_answers_many(
                [(self._traces[i].problem, (*self._traces[i].episodes, texts[i])) for i in ending])
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict = {}
        for i in range(self.num_envs):
            if i in restart:
                self._traces[i] = self._new_trace(restart[i])
                info = self._traces[i].reset_info()
            elif i in texts:
                result = self._traces[i].add_episode(texts[i], tokens[i])
                rewards[i], terminated[i], truncated[i], info = result.reward, result.terminated, result.truncated, result.info
            else:  # autoreset disabled and this sub-env has ended: nothing happens
                continue
            infos = self._add_info(infos, info, i)
        if disabled:
            self._ended |= terminated | truncated
        else:
            self._ended = terminated | truncated
        return self._batched_obs(), rewards, terminated, truncated, infos

    def render(self):
        if self.render_mode == "ansi":
            return tuple(None if t is None else t.render() for t in self._traces)
        return None


def unbatch(observations: dict, infos: dict, num_envs: int | None = None) -> tuple[list[dict], list[dict]]:
    """Per-sub-env observations and infos from a vector env's batched ones (for `act_batch`).

    Info keys a sub-env did not report (mask `_key` False) are left out of its info.
    """
    n = len(observations["problem"]) if num_envs is None else num_envs
    obs = [{"problem": observations["problem"][i], "episodes": tuple(observations["episodes"][i])} for i in range(n)]
    per_env: list[dict] = [{} for _ in range(n)]
    for key, values in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        for i in range(n):
            if mask is None or mask[i]:
                value = values[i]
                per_env[i][key] = value.item() if isinstance(value, np.generic) else value
    return obs, per_env
