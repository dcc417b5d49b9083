"""TTC-Replay-v0 on a small hand-made analysed trace set: the spec's behaviours (continue, switch,
answer, reward from the stored J, budget end, the null-J rule), bad data, determinism."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.actions import MetaAction
from ttc_gym.envs.replay import OBS_FIELDS, TTCReplayEnv
from ttc_gym.envs.replay_data import FORMAT, ReplayDataError, load_replay_data, split_of
from ttc_gym.traces import TraceFormatError

C, S, V, A = MetaAction.CONTINUE, MetaAction.SWITCH, MetaAction.VERIFY, MetaAction.ANSWER
FIELD = {name: i for i, name in enumerate(OBS_FIELDS)}


def row(pid, tid, gold, tokens, answers, correct=None, ungraded=(), question="Q?"):
    """One analysed trace: `tokens[i]` of episode i, `answers[j]` the forced answers after j episodes,
    graded against `gold` (or given by `correct[j]`); prefixes in `ungraded` have no grade (J null).
    J is the mean of the graded answers, as the format requires."""
    prefixes, total = [], 0
    for j, ans in enumerate(answers):
        grades = correct[j] if correct is not None and correct[j] is not None else [a == gold for a in ans]
        if j in ungraded:
            grades = [None] * len(ans)
        known = [g for g in grades if g is not None]
        J = sum(known) / len(known) if known else None
        prefixes.append({"n_episodes": j, "tokens": total, "forced_answers": list(ans), "correct": grades, "J": J})
        if j < len(tokens):
            total += tokens[j]
    return {"format": FORMAT, "problem_id": pid, "problem": question, "answer": gold, "trace_id": tid,
            "model": "hand-made", "episodes": [{"text": f"{tid} episode {i + 1}.", "tokens": t}
                                               for i, t in enumerate(tokens)],
            "prefixes": prefixes,
            "prover": {"engine": "hand", "k": len(answers[0]), "max_new_tokens": 24, "template": "boxed"},
            "final_answer": None, "final_correct": None}


def fixture_rows():
    return [
        # p1: trace a climbs to the answer; trace b goes wrong then recovers late.
        row("p1", "a", "12", [10, 20, 30], [["1", "2", "12", "3"], ["12", "12", "3", "4"],
                                             ["12", "12", "12", "12"], ["12", "12", "12", "12"]]),
        row("p1", "b", "12", [5, 7], [["1", "2", "12", "3"], ["9", "9", "9", "9"], ["12", "12", "12", "9"]]),
        # p2: prefix 1 ungraded (skipped), one answer of prefix 2 ungraded (never committed): J 2/3 there.
        row("p2", "c", "7", [4, 6], [["7", "7", "1", "2"], ["x", "y", "z", "w"], ["7", "7", "7", "8"]],
            correct=[None, None, [True, None, True, False]], ungraded={1}),
        # p3: trace d's empty prefix ungraded (borrowed from e); its last prefix ungraded (dropped).
        row("p3", "d", "5", [3, 3], [["5", "1", "1", "1"], ["5", "5", "1", "1"], ["5", "5", "5", "5"]],
            ungraded={0, 2}),
        row("p3", "e", "5", [8], [["5", "1", "1", "1"], ["5", "5", "5", "1"]]),
    ]


def make(**kwargs):
    return gym.make("TTC-Replay-v0", **{"data": fixture_rows(), **kwargs})


def start(env, problem="p1", trace="a", seed=0):
    return env.reset(seed=seed, options={"problem_id": problem, "trace_id": trace})


# ---- continue, switch, verify, answer ---------------------------------------------------------------

def test_continue_reveals_the_next_stored_episode_with_its_tokens_and_j():
    env = make()
    obs, info = start(env)
    assert (info["J"], info["episodes_used"], info["tokens_used"], info["trace_position"]) == (0.25, 0, 0, 0)
    assert obs[FIELD["agreement"]] == 1 and obs[FIELD["last_action"]] == len(MetaAction)
    obs, r, term, trunc, info = env.step(C)
    assert (info["J"], info["episodes_used"], info["tokens_used"], info["episode_tokens"]) == (0.5, 1, 10, 10)
    assert r == pytest.approx(0.25) and not term and not trunc
    assert obs[FIELD["agreement"]] == 2 and obs[FIELD["agreement_change"]] == 2  # up
    assert obs[FIELD["majority_changed"]] == 1  # "1" (first seen of four singletons) -> "12"
    obs, r, *_ , info = env.step(V)  # verify reveals the next episode as continue does
    assert (info["J"], info["tokens_used"], obs[FIELD["agreement"]]) == (1.0, 30, 4)
    assert r == pytest.approx(0.5)


def test_continue_when_the_trace_ended_commits_an_answer_without_spending_an_episode():
    env = make()
    start(env)
    for _ in range(3):
        obs, *_ = env.step(C)
    assert obs[FIELD["trace_ended"]] == 1
    obs, r, term, trunc, info = env.step(C)
    assert term and not trunc and info["answered"] and info["episodes_used"] == 3
    assert r == info["outcome"] == 1.0 and info["committed_answer"] == "12" and info["progress"] == 0.0


def test_switch_moves_to_the_first_episode_of_another_trace_of_the_same_problem():
    env = make()
    start(env)
    env.step(C)  # a: J 0.5 after 10 tokens
    obs, r, term, trunc, info = env.step(S)
    assert info["trace_id"] == "b" and info["trace_position"] == 1 and info["problem_id"] == "p1"
    assert info["J"] == 0.0 and info["episodes_used"] == 2 and info["episode_tokens"] == 5
    assert info["tokens_used"] == 15 and r == pytest.approx(-0.5)  # progress = J(b, 1) - J(a, 1)
    assert obs[FIELD["trace_ended"]] == 0 and obs[FIELD["last_action"]] == S
    obs, r, *_, info = env.step(C)
    assert info["J"] == 0.75 and info["tokens_used"] == 22 and obs[FIELD["trace_ended"]] == 1
    _, _, _, _, info = env.step(S)  # back to a, from its first episode
    assert info["trace_id"] == "a" and info["trace_position"] == 1 and info["J"] == 0.5


def test_switch_with_one_trace_restarts_it_from_its_first_episode():
    env = make()
    start(env, "p2", "c")
    env.step(C)
    _, r, _, _, info = env.step(S)
    assert info["trace_id"] == "c" and info["trace_position"] == 1 and info["episodes_used"] == 2
    assert info["tokens_used"] == 20 and info["episode_tokens"] == 10


def test_answer_commits_a_stored_forced_answer_drawn_with_the_env_rng():
    env = make()
    outcomes = []
    for seed in range(400):
        start(env, seed=seed)
        _, r, term, trunc, info = env.step(A)
        assert term and not trunc and info["episodes_used"] == 0 and info["progress"] == 0.0
        assert info["committed_answer"] in ("1", "2", "12", "3") and info["gold_answer"] == "12"
        assert r == info["outcome"] == float(info["committed_answer"] == "12")
        outcomes.append(r)
    assert np.mean(outcomes) == pytest.approx(0.25, abs=0.06)


# ---- rewards ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, cost", [(1.0, 0.0), (0.3, 0.05), (0.0, 0.1)])
def test_reward_is_outcome_plus_alpha_progress_from_the_stored_j_minus_cost(alpha, cost):
    env = make(alpha=alpha, episode_cost=cost)
    for seed in range(20):
        _, info = start(env, seed=seed)
        js, total = [info["J"]], 0.0
        actions = np.random.default_rng(seed).choice([C, S, V], size=8)
        for a in list(actions) + [A]:
            _, r, term, trunc, info = env.step(int(a))
            spent = info["episodes_used"] == len(js)
            assert r == pytest.approx(info["outcome"] + alpha * (info["J"] - js[-1]) - (cost if spent else 0.0))
            assert r == info["reward"]
            js.append(info["J"])
            total += r
            if term or trunc:
                break
        n = info["episodes_used"]
        assert total == pytest.approx(info["outcome"] + alpha * (js[-1] - js[0]) - cost * n)


def test_budget_end_forces_an_answer_at_the_prefix_reached():
    env = make(max_episodes=2)
    start(env)
    env.step(C)
    _, r, term, trunc, info = env.step(C)
    assert term and trunc and info["answered"] and info["episodes_used"] == 2
    assert info["committed_answer"] == "12" and r == pytest.approx(1.0 + 0.5)  # J 1.0 at a's prefix 2: all agree
    env = make(max_episodes=2, answer_on_truncation=False)
    start(env)
    env.step(C)
    _, r, term, trunc, info = env.step(C)
    assert trunc and not term and info["outcome"] == 0.0 and info["committed_answer"] is None


def test_token_budget_ends_after_the_episode_that_reaches_it():
    env = make(max_tokens=25)
    start(env)
    _, _, _, trunc, info = env.step(C)
    assert not trunc and info["tokens_left"] == 15
    _, _, term, trunc, info = env.step(C)  # 30 tokens: the stored episode is revealed whole
    assert term and trunc and info["tokens_used"] == 30 and info["tokens_left"] == 0


# ---- ungraded prefixes (J null) ----------------------------------------------------------------------

def test_an_ungraded_prefix_is_skipped_its_episodes_revealed_with_the_next_one():
    env = make()
    start(env, "p2", "c")
    _, r, _, _, info = env.step(C)
    assert info["trace_position"] == 1 and info["tokens_used"] == 10 and info["episodes_used"] == 1
    assert info["J"] == pytest.approx(2 / 3) and r == pytest.approx(2 / 3 - 0.5) and info["trace_ended"]
    assert env.unwrapped.trace.points[1].episodes == 2


def test_an_answer_with_an_ungraded_grade_is_never_committed():
    env = make()
    committed = set()
    for seed in range(60):
        start(env, "p2", "c", seed=seed)
        env.step(C)
        _, r, _, _, info = env.step(A)
        committed.add((info["committed_answer"], r))
    # index 1 ("7", ungraded) never; "7" at index 0 or 2 (correct), "8" (wrong): 2/3 correct
    assert committed == {("7", 1.0), ("8", 0.0)}
    assert env.unwrapped.trace.points[1].p_correct == pytest.approx(2 / 3)


def test_an_ungraded_empty_prefix_is_borrowed_and_trailing_ungraded_prefixes_dropped():
    data = load_replay_data(fixture_rows())
    d, e = data.problem("p3").traces
    assert d.points[0].j == e.points[0].j == 0.25 and d.points[0].answers == e.points[0].answers
    assert [p.episodes for p in d.points] == [0, 1] and d.episode_texts == ("d episode 1.",)


def test_a_problem_without_a_graded_empty_prefix_is_left_out_and_listed():
    rows = fixture_rows() + [row("p4", "f", "1", [2], [["1"], ["1"]], ungraded={0})]
    data = load_replay_data(rows)
    assert [p.problem_id for p in data.problems] == ["p1", "p2", "p3"]
    assert data.skipped == (("p4", "no trace has a graded empty prefix (J null at n_episodes 0)"),)
    with pytest.raises(KeyError, match="'p4' is not in this trace set"):
        make(data=rows).reset(options={"problem_id": "p4"})


# ---- observation: gold-free ---------------------------------------------------------------------------

def gold_twins(env_id="TTC-Replay-v0"):
    """Two rollouts (observations, J's) of one trace set under two gold answers, same seed and actions:
    the forced answers, tokens and episodes are the same, J is not (tests/envs/test_envs.py's gold-free
    test uses this for TTC-Replay-v0)."""
    out = []
    for gold in ("12", "13"):
        rows = [row("p1", "a", gold, [10, 20], [["12", "12", "13", "13"], ["12", "12", "12", "13"],
                                                 ["13", "13", "13", "13"]]),
                row("p1", "b", gold, [7], [["12", "12", "13", "13"], ["12", "13", "13", "13"]])]
        env = gym.make(env_id, data=rows)
        obs, info = env.reset(seed=0)
        seen, js = [obs], [info["J"]]
        for a in (C, S, C, C):
            obs, _, term, trunc, info = env.step(a)
            seen.append(obs)
            js.append(info["J"])
            if term or trunc:
                break
        out.append((seen, js))
    return out


def test_observations_do_not_change_with_the_gold_answer():
    (obs_a, j_a), (obs_b, j_b) = gold_twins()
    assert j_a != j_b and len(obs_a) > 2
    assert all(np.array_equal(x, y) for x, y in zip(obs_a, obs_b, strict=True))


# ---- starting state, split, determinism ----------------------------------------------------------------

def test_reset_draws_problem_and_trace_with_the_seed_and_options_choose_them():
    env = make()
    seen = {(env.reset(seed=s)[1]["problem_id"], env.unwrapped.trace.trace_id) for s in range(80)}
    assert seen == {("p1", "a"), ("p1", "b"), ("p2", "c"), ("p3", "d"), ("p3", "e")}
    _, info = env.reset(seed=1, options={"problem_id": "p3"})
    assert info["problem_id"] == "p3"
    with pytest.raises(ValueError, match="has no trace 'zz'; its traces"):
        env.reset(options={"problem_id": "p1", "trace_id": "zz"})
    with pytest.raises(ValueError, match="accept only 'problem_id', 'trace_id', 'prefix_episodes'.*Did you mean 'problem_id'"):
        env.reset(options={"problem": "p1"})


def test_split_is_a_deterministic_partition_by_problem_id():
    rows = [row(f"q{i}", "t", "1", [1], [["1"], ["1"]]) for i in range(60)]
    train = gym.make("TTC-Replay-v0", data=rows, split="train").unwrapped.dataset
    test = gym.make("TTC-Replay-v0", data=rows, split="test").unwrapped.dataset
    train_ids, test_ids = {p.problem_id for p in train.problems}, {p.problem_id for p in test.problems}
    assert train_ids.isdisjoint(test_ids) and len(train_ids | test_ids) == 60 and 8 <= len(test_ids) <= 30
    assert test_ids == {f"q{i}" for i in range(60) if split_of(f"q{i}") == "test"}
    reversed_test = gym.make("TTC-Replay-v0", data=rows[::-1], split="test").unwrapped.dataset
    assert {p.problem_id for p in reversed_test.problems} == test_ids  # order of the file does not matter
    other = {f"q{i}" for i in range(60) if split_of(f"q{i}", split_seed=1) == "test"}
    assert other != test_ids
    only = gym.make("TTC-Replay-v0", data=rows, problems=["q3", "q5"]).unwrapped.dataset
    assert [p.problem_id for p in only.problems] == ["q3", "q5"]
    with pytest.raises(ValueError, match="names ids not in the trace set"):
        gym.make("TTC-Replay-v0", data=rows, problems=["nope"])
    with pytest.raises(ValueError, match="split must be one of"):
        gym.make("TTC-Replay-v0", data=rows, split="dev")


def test_same_seed_same_rollout_and_the_file_equals_the_rows(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in fixture_rows()))

    def rollouts(env):
        out = []
        env.action_space.seed(3)
        for seed in range(30):
            obs, info = env.reset(seed=seed)
            trail = [(obs.tolist(), info["J"], info["trace_id"])]
            while True:
                obs, r, term, trunc, info = env.step(env.action_space.sample())
                trail.append((obs.tolist(), r, info["J"], info["trace_id"], info["committed_answer"]))
                if term or trunc:
                    break
            out.append(trail)
        return out

    a = rollouts(gym.make("TTC-Replay-v0", data=fixture_rows()))
    assert a == rollouts(gym.make("TTC-Replay-v0", data=str(path)))
    assert a != rollouts(gym.make("TTC-Replay-v0", data=fixture_rows(), max_episodes=3))


def test_render_ansi_shows_the_trace_and_j():
    env = make(render_mode="ansi")
    start(env)
    env.step(C)
    text = env.render()
    assert "problem p1, trace a: J_0 = 0.25" in text and "continue: trace a prefix 1 J=0.50" in text


# ---- bad data: clear errors, with the line ------------------------------------------------------------------

def _write(tmp_path, rows):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("answer"), "expected a field 'answer'"),
    (lambda r: r.update(format="v0"), "field 'format' must be 'ttc-gym/analysed-trace/v1', got 'v0'"),
    (lambda r: r["prefixes"].pop(), "field 'prefixes' must have one entry per prefix"),
    (lambda r: r["prefixes"][2].update(J=1.5), r"field 'prefixes\[2\].J' must be the mean of the graded"),
    (lambda r: r["prefixes"][1].update(correct=[True]), r"field 'prefixes\[1\].correct' must be a list of K=4"),
    (lambda r: r["prefixes"][1].update(n_episodes=2), r"field 'prefixes\[1\].n_episodes' must be 1"),
    (lambda r: r["prefixes"][3].update(tokens=7), r"field 'prefixes\[3\].tokens' must be the cumulative episode "
                                                  r"tokens 60, got 7"),
    (lambda r: r["episodes"][0].update(tokens=-1), r"field 'episodes\[0\]' must be"),
    (lambda r: r["prefixes"][1].update(correct=[None] * 4), r"'prefixes\[1\].J' must be null when no forced answer"),
])
def test_bad_rows_name_the_file_line_and_field(tmp_path, edit, message):
    rows = fixture_rows()
    edit(rows[0])
    path = _write(tmp_path, rows)
    with pytest.raises(TraceFormatError, match=rf"bad\.jsonl:1: .*{message}"):
        gym.make("TTC-Replay-v0", data=path)
    with pytest.raises(TraceFormatError, match=rf"data rows:0: .*{message}"):
        gym.make("TTC-Replay-v0", data=rows)


def test_bad_json_duplicates_and_clashes_name_their_line(tmp_path):
    rows = fixture_rows()
    with pytest.raises(TraceFormatError, match=r"bad\.jsonl:3: not a JSON object"):
        load_replay_data(_write(tmp_path, rows[:2] + ["{oops"]))
    with pytest.raises(ReplayDataError, match=r"bad\.jsonl:3: trace_id 'a' of problem 'p1' appears twice"):
        load_replay_data(_write(tmp_path, rows[:2] + [rows[0]]))
    clash = dict(rows[1], answer="13")
    with pytest.raises(ReplayDataError, match=r"bad\.jsonl:2: problem_id 'p1' has another problem or answer than "
                                              r"on .*bad\.jsonl:1"):
        load_replay_data(_write(tmp_path, [rows[0], clash]))
    with pytest.raises(TraceFormatError, match=r"data rows:1: expected a JSON object"):
        load_replay_data([rows[0], [1, 2]])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gym.make("TTC-Replay-v0", data=str(tmp_path / "none.jsonl"))
    with pytest.raises(ReplayDataError, match="holds no analysed trace"):
        load_replay_data(_write(tmp_path, []))


def test_bad_arguments_and_actions_are_refused():
    with pytest.raises(ValueError, match="max_episodes \\(H\\) must be >= 1"):
        make(max_episodes=0)
    with pytest.raises(TypeError, match="data must be a path"):
        TTCReplayEnv(data=3)
    env = make()
    with pytest.raises(RuntimeError, match="before reset"):
        env.unwrapped.step(0)
    start(env)
    with pytest.raises(ValueError, match="action must be an int in \\[0, 4\\)"):
        env.step(True)


# ---- checkers ------------------------------------------------------------------------------------------

def test_gymnasium_and_sb3_checkers_pass_on_the_fixture():
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    gym_check_env(make(render_mode="ansi", disable_env_checker=True).unwrapped, skip_render_check=False)
    sb3_check_env(make().unwrapped, warn=True)


def test_bad_reset_options_touch_nothing():
    env = make()
    _, info = start(env, "p1", "b")
    rng_state = env.unwrapped.np_random.bit_generator.state
    for options in ({"problem_id": "p1", "trace_id": "zz"}, {"trace_id": "a"}, {"problem_id": "nope"}):
        with pytest.raises((ValueError, KeyError)):
            env.reset(seed=5, options=options)
    assert env.unwrapped.np_random.bit_generator.state == rng_state
    _, _, _, _, after = env.step(C)  # the rollout of p1 / b goes on as before
    assert after["trace_id"] == "b" and after["J"] == 0.0 and after["episodes_used"] == 1
