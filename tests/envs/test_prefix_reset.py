"""Starting an env from a prefix of a rollout, through `reset(options=...)` (issue 27): resetting to the
point a rollout reached after k steps and stepping on with the same actions gives the same rewards, J,
budget and ends as the rollout from the start; bad prefixes are refused before anything is touched.

`PREFIXERS` says, per registered env, how to run it and how to turn a rollout's first k steps into
reset options; an env registered without an entry must be listed in `PENDING` (the test says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym
from ttc_gym.actions import MetaAction
from ttc_gym.problems import Problem
from tests.conftest import fast_env_kwargs, make_fast_env

SEED = 3
TEXTS = ["First I look at the numbers.", "Then I add them up carefully.", "Let me check that sum again.",
         "So the total stays the same."]
C, SWITCH, VERIFY, ANSWER = MetaAction.CONTINUE, MetaAction.SWITCH, MetaAction.VERIFY, MetaAction.ANSWER


@dataclass(frozen=True)
class Rollout:
    reset_obs: Any
    reset_info: dict
    steps: list  # (obs, reward, terminated, truncated, info) of each step


@dataclass(frozen=True)
class Prefixer:
    """How to prefix-reset one env: `make()` a fresh env (its own prover memo), the `actions` of a
    rollout, the `start` options of the rollout from the start, and `options(env, rollout, k)`: the
    reset options of the point the rollout reached after k steps (the env has run that rollout)."""

    make: Callable[[], gym.Env]
    actions: list
    start: Callable[[gym.Env], dict | None]
    options: Callable[[gym.Env, Rollout, int], dict]
    ks: tuple[int, ...]
    prefix_seed: int | None = SEED  # the prefix reset's seed (None: a snapshot's generator continues)


def _math_options(env, rollout, k):
    return {"problem": env.unwrapped.trace.problem, "prefix": list(rollout.steps[k - 1][0]["episodes"])}


def _meta_options(env, rollout, k):
    return {"problem": env.unwrapped.trace.problem, "prefix": [step[4]["episode_text"] for step in rollout.steps[:k]]}


def _replay_trace(env):
    """A trace of the shipped set's first problem with two or more traces of 5 or more decision points
    each (a rollout of the actions below goes through all of them)."""
    problem = next(p for p in env.unwrapped.dataset.problems
                   if len(p.traces) >= 2 and all(len(t.points) >= 5 for t in p.traces))
    return problem.problem_id, problem.traces[0].trace_id


def _replay_start(env):
    problem_id, trace_id = _replay_trace(env)
    return {"problem_id": problem_id, "trace_id": trace_id}


def _replay_options(env, rollout, k):
    return {**_replay_start(env), "prefix_episodes": k}


MICRO_TEXTS = ["Step 1: 2 + 3 = 5.", "Step 2: 5 - 1 = 4.", "Wait, let me double-check. 5 - 1 = 4.", "Step 3: 4 + 2 = 6."]
SIM_ACTIONS = [0, 0, 2, 1, 0, 0, 3]  # continue, continue, verify, switch, continue, continue, answer


def _sim_options(env, rollout, k):
    """TTC-Sim-v0's point after k steps: its `snapshot()` there (the rollout replayed on a fresh env)."""
    replay = gym.make("TTC-Sim-v0").unwrapped
    replay.reset(seed=SEED)
    for action in SIM_ACTIONS[:k]:
        replay.step(action)
    return {"snapshot": replay.snapshot()}


PREFIXERS: dict[str, Prefixer] = {
    # A snapshot holds the generator's state: reset without a seed, the noise goes on as from the start.
    "TTC-Sim-v0": Prefixer(lambda: gym.make("TTC-Sim-v0"), SIM_ACTIONS, lambda env: None, _sim_options, (1, 3, 5),
                           prefix_seed=None),
    "TTC-Math-v0": Prefixer(lambda: make_fast_env("TTC-Math-v0"), TEXTS, lambda env: None, _math_options, (1, 3)),
    # verify, switch, continue: the env's model writes each episode after the action's cue; then answer now.
    "TTC-MathMeta-v0": Prefixer(lambda: make_fast_env("TTC-MathMeta-v0"), [VERIFY, SWITCH, C, ANSWER],
                                lambda env: None, _meta_options, (1, 3)),
    # The registered micro-reasoner itself (fast enough for the default suite): its model is the prover.
    "TTC-Micro-v0": Prefixer(lambda: make_fast_env("TTC-Micro-v0"), MICRO_TEXTS, lambda env: None, _math_options,
                             (1, 2, 3)),
    # A stored prefix is continue / verify steps along one trace (k <= 3 here); a switch and an answer
    # after it draw from np_random as after a reset with the same seed and ids.
    "TTC-Replay-v0": Prefixer(lambda: gym.make("TTC-Replay-v0", max_episodes=6), [C, VERIFY, C, SWITCH, C, ANSWER],
                              _replay_start, _replay_options, (1, 2, 3)),
}
#: Registered envs whose prefix reset is tested elsewhere (none now; tests/envs/test_sim_snapshot.py tests
#: TTC-Sim-v0's snapshots further).
PENDING: set[str] = set()


def _run(env, actions, seed, options=None) -> Rollout:
    obs, info = env.reset(seed=seed, options=options)
    steps = []
    for action in actions:
        step = env.step(action)
        steps.append(step)
        if step[2] or step[3]:
            break
    return Rollout(obs, info, steps)


STEP_KEYS = ("J", "progress", "outcome", "reward", "episodes_used", "tokens_used", "tokens_left", "answered",
             "committed_answer", "prover_answers", "prover_correct")
POINT_KEYS = ("J", "episodes_used", "tokens_used", "tokens_left", "prover_answers", "prover_correct")


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _registered() -> list[str]:
    return [env_id for env_id in gym.registry if env_id in ttc_gym.env_ids()]


def test_every_registered_env_has_a_prefixer_or_is_pending():
    assert set(_registered()) == set(PREFIXERS) | PENDING
    assert not set(PREFIXERS) & PENDING


#: The same on the micro-reasoner (`ttc_gym.micro`): a trained model writes the episodes and J moves.
MICRO = {"engine": "micro", "source": "micro:1", "max_episodes": 4, "num_prover_samples": 4}
MICRO_PREFIXERS: dict[str, Prefixer] = {
    "TTC-Math-v0": Prefixer(lambda: gym.make("TTC-Math-v0", **MICRO), MICRO_TEXTS, lambda env: None,
                            _math_options, (1, 2, 3)),
    "TTC-MathMeta-v0": Prefixer(lambda: gym.make("TTC-MathMeta-v0", **MICRO), [C, VERIFY, SWITCH, C],
                                lambda env: None, _meta_options, (1, 2, 3)),
}


@pytest.mark.parametrize("env_id", sorted(PREFIXERS))
def test_stepping_on_from_a_prefix_equals_stepping_there_from_the_start(env_id):
    _check_prefix_resets(PREFIXERS[env_id])


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(MICRO_PREFIXERS))
def test_the_same_on_the_micro_reasoner(env_id):
    _check_prefix_resets(MICRO_PREFIXERS[env_id])


def _check_prefix_resets(how: Prefixer) -> None:
    env = how.make()
    full = _run(env, how.actions, SEED, how.start(env))
    assert len(full.steps) == len(how.actions)  # the rollout runs through every action (none ends it early)
    for k in how.ks:
        fresh = how.make()  # its own prover memo: the prefix's J is measured again, not read back
        part = _run(fresh, how.actions[k:], how.prefix_seed, how.options(env, full, k))
        there = full.steps[k - 1][4]
        for key in (key for key in POINT_KEYS if key in there):  # the keys the env reports
            assert _same(part.reset_info[key], there[key]), (k, key, part.reset_info[key], there[key])
        assert part.reset_info["episodes_used"] == k and part.reset_info["progress"] == 0.0
        if "J_prefix_start" in part.reset_info:  # the math envs: J_0, before the prefix
            assert part.reset_info["J_prefix_start"] == full.reset_info["J"]
        assert len(part.steps) == len(full.steps) - k
        for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(part.steps, full.steps[k:]):
            assert (r1, te1, tr1) == (r2, te2, tr2)
            assert _same(o1, o2)
            for key in (key for key in STEP_KEYS if key in i2):
                assert _same(i1[key], i2[key]), (k, key, i1[key], i2[key])


def test_the_math_envs_observation_and_trace_at_a_prefix_are_the_rollouts():
    env = make_fast_env("TTC-Math-v0", render_mode="ansi")
    full = _run(env, TEXTS, SEED)
    problem = env.unwrapped.trace.problem
    fresh = make_fast_env("TTC-Math-v0", render_mode="ansi")
    obs, info = fresh.reset(seed=SEED, options={"problem": problem, "prefix": TEXTS[:2]})
    assert obs == full.steps[1][0] and obs["episodes"] == tuple(TEXTS[:2])
    trace = fresh.unwrapped.trace
    assert trace.prefix_length == 2 and trace.episodes == TEXTS[:2] and trace.j_start == full.reset_info["J"]
    assert trace.tracker.j_curve == [info["J"]] and info["J"] == full.steps[1][4]["J"]
    assert info["tokens_used"] == sum(fresh.unwrapped.engine.count_tokens(t) for t in TEXTS[:2])
    fresh.step(TEXTS[2])
    text = fresh.render()
    assert "[episode 2, given at reset]" in text and "[episode 3]" in text and "J_2 =" in text and "J_3 =" in text
    # An empty prefix is no prefix.
    _, again = fresh.reset(seed=SEED, options={"problem": problem, "prefix": []})
    assert again["episodes_used"] == 0 and again["J"] == again["J_prefix_start"] == full.reset_info["J"]


def test_meta_env_prefix_observation_is_a_reset_at_that_point():
    from ttc_gym.envs.math_meta import OBS_FIELDS

    how = PREFIXERS["TTC-MathMeta-v0"]
    env = how.make()
    full = _run(env, how.actions, SEED)
    obs, info = how.make().reset(seed=SEED, options=_meta_options(env, full, 2))
    at, then = dict(zip(OBS_FIELDS, obs.tolist())), dict(zip(OBS_FIELDS, full.steps[1][0].tolist()))
    assert at == {**then, "agreement_change": 1, "majority_changed": 2, "last_action": len(MetaAction)}
    assert info["episode_text"] == ""


def test_the_vector_env_takes_one_prefix_per_sub_env():
    singles = [make_fast_env("TTC-Math-v0") for _ in range(3)]
    fulls = [_run(env, TEXTS, SEED + i) for i, env in enumerate(singles)]
    problems = [env.unwrapped.trace.problem for env in singles]
    ks = [2, 0, 1]
    vec = gym.make_vec("TTC-Math-v0", num_envs=3, vectorization_mode="vector_entry_point", autoreset_mode="disabled",
                       **fast_env_kwargs("TTC-Math-v0"))
    prefixes = [TEXTS[:2], None, TEXTS[:1]]
    obs, infos = vec.reset(seed=SEED, options={"problems": problems, "prefixes": prefixes})
    for i, k in enumerate(ks):
        there = fulls[i].steps[k - 1][4] if k else fulls[i].reset_info
        assert infos["J"][i] == there["J"] and infos["episodes_used"][i] == k
        assert infos["tokens_used"][i] == there["tokens_used"]
        assert infos["J_prefix_start"][i] == fulls[i].reset_info["J"]
        assert tuple(obs["episodes"][i]) == tuple(TEXTS[:k])
    position = list(ks)
    ended = [False] * 3
    while not all(ended):
        actions = [None if ended[i] else TEXTS[position[i]] for i in range(3)]
        _, rewards, terminated, truncated, infos = vec.step(actions)
        for i in range(3):
            if ended[i]:
                continue
            _, r, te, tr, info = fulls[i].steps[position[i]]
            assert (rewards[i], terminated[i], truncated[i]) == (r, te, tr)
            for key in ("J", "progress", "outcome", "episodes_used", "tokens_used", "committed_answer"):
                assert infos[key][i] == info[key], (i, key)
            position[i] += 1
            ended[i] = bool(te or tr)
    assert position == [4, 4, 4]
    vec.close()


# ---- bad prefixes: a clear error, nothing touched -------------------------------------------------

PROBLEM = Problem(id="p1", question="What is 5 + 7?", answer="12", source="test")


@pytest.mark.parametrize("env_id", ["TTC-Math-v0", "TTC-MathMeta-v0"])
def test_bad_math_prefixes_are_refused_before_anything_is_touched(env_id):
    from tests.conftest import tiny_engine

    long = "one two three four five six seven eight nine ten"
    env = make_fast_env(env_id, max_tokens=2 * tiny_engine().count_tokens(long))
    env.reset(seed=0, options={"problem": PROBLEM})
    base = env.unwrapped
    trace, rng = base.trace, base.np_random.bit_generator.state
    H = base._settings.max_episodes
    for options, error, words in [
        ({"problem": PROBLEM, "prefix": "I add."}, TypeError, r"list of episode texts .*wrap it in a list"),
        ({"problem": PROBLEM, "prefix": {"a": 1}}, TypeError, "list of episode texts"),
        ({"problem": PROBLEM, "prefix": ["I add.", 7]}, TypeError, r"prefix'\[1\] must be a str"),
        ({"problem": PROBLEM, "prefix": ["  "]}, ValueError, "empty episode"),
        ({"problem": PROBLEM, "prefix": ["So it is \\boxed{12}."]}, ValueError, "commits an answer"),
        ({"problem": PROBLEM, "prefix": ["I add."] * H}, ValueError, "use up the budget"),
        ({"problem": PROBLEM, "prefix": [long, long]}, ValueError, "use up the budget"),
        ({"prefix": ["I add."]}, ValueError, "'prefix' needs 'problem' too"),
        ({"problem": PROBLEM, "prefixes": [["I add."]]}, ValueError, "accept only 'problem', 'prefix'"),
    ]:
        with pytest.raises(error, match=words):
            env.reset(seed=5, options=options)
        assert base.trace is trace and base.np_random.bit_generator.state == rng, options
    if env_id == "TTC-Math-v0":  # the policy's episodes have a length limit (the meta env's model has none)
        with pytest.raises(ValueError, match=r"prefix'\[0\] is 65 characters long"):
            env.reset(options={"problem": PROBLEM, "prefix": ["x" * 65]})


def test_bad_replay_prefixes_are_refused_before_anything_is_touched():
    env = gym.make("TTC-Replay-v0", max_episodes=4)
    start = _replay_start(env)
    env.reset(seed=0, options=start)
    base = env.unwrapped
    rng = base.np_random.bit_generator.state
    points = len(base.trace.points)
    for options, error, words in [
        ({"problem_id": start["problem_id"], "prefix_episodes": 1}, ValueError, "needs 'problem_id' and 'trace_id'"),
        ({**start, "prefix_episodes": 1.0}, TypeError, "must be an int"),
        ({**start, "prefix_episodes": True}, TypeError, "must be an int"),
        ({**start, "prefix_episodes": -1}, ValueError, ">= 0"),
        ({**start, "prefix_episodes": points}, ValueError, f"has {points - 1} episodes after its start"),
        ({**start, "prefix_episodes": 4}, ValueError, "uses up the budget"),
        ({**start, "prefix": ["I add."]}, ValueError, "'prefix_episodes': k, not by texts"),
    ]:
        with pytest.raises(error, match=words):
            env.reset(seed=5, options=options)
        assert base.np_random.bit_generator.state == rng, options
    _, info = env.reset(seed=5, options={**start, "prefix_episodes": 0})  # 0: the trace's start
    assert info["episodes_used"] == 0 and info["trace_position"] == 0 and info["J"] == info["J_prefix_start"]


def test_bad_vector_prefixes_are_refused():
    vec = gym.make_vec("TTC-Math-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       **fast_env_kwargs("TTC-Math-v0"))
    for options, words in [
        ({"problems": [PROBLEM, PROBLEM], "prefixes": [["I add."]]}, "sequence of 2 prefixes"),
        ({"problems": [PROBLEM, PROBLEM], "prefixes": "I add."}, "sequence of 2 prefixes"),
        ({"problem": PROBLEM, "prefix": ["I add."], "prefixes": [None, None]}, "not both"),
        ({"problems": [PROBLEM, None], "prefixes": [None, ["I add."]]}, r"prefixes'\]\[1\] needs a problem"),
        ({"problems": [PROBLEM, PROBLEM], "prefixes": [None, ["I add.", ""]]}, r"prefixes'\]\[1\]\[1\] is an empty"),
        ({"prefix": ["I add."]}, r"options\['prefix'\] needs a problem for sub-env 0"),
    ]:
        with pytest.raises(ValueError, match=words):
            vec.reset(seed=0, options=options)
    vec.close()
