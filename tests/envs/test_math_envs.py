"""TTC-Math-v0 and TTC-MathMeta-v0 mechanics, with a scripted engine (exact J) and a tiny random model."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.agents.heuristics import AnswerAfterK
from ttc_gym.agents.llm import LLMAgent
from ttc_gym.agents.strategies import BudgetForcing, MajorityVote, StopWhenConfident, ThinkUntilBudget
from ttc_gym.engines.base import Completion
from ttc_gym.evaluation import run_rollout
from ttc_gym.llm_prover import LLMProver
from ttc_gym.problems import Problem
from ttc_gym.engines.testing import ScriptedChatEngine
from tests.conftest import make_fast_env

PROBLEM = Problem(id="p1", question="What is 5 + 7?", answer="12", source="test", difficulty=1)


class ScriptedEngine(ScriptedChatEngine):
    """A fake engine: forced answers are correct in proportion to the number of episodes so far
    (a known J curve), episodes are fixed text. Counts its calls."""

    name = "scripted"

    def __init__(self, k_correct_per_episode=(1, 3, 5, 8)):
        self.k_correct = k_correct_per_episode
        self.calls = 0
        self.requests = []  # (prompts, sampling) of every call

    def generate(self, prompts, sampling, *, seed):
        self.calls += 1
        self.requests.append((list(prompts), sampling))
        out = []
        for prompt in prompts:
            if prompt.endswith("\\boxed{"):  # the prover's forced answer
                n_eps = prompt.count("[ep]")
                k = self.k_correct[min(n_eps, len(self.k_correct) - 1)]
                texts = ["12}$"] * k + ["13}$"] * (sampling.n - k)
                out.append([Completion(t, 2, "stop", "}$") for t in texts])
            else:
                out.append([Completion("[ep] I add 5 and 7.", 5, "stop", "\n\n")] * sampling.n)
        return out


def scripted_env(env_id="TTC-Math-v0", **kwargs):
    return gym.make(env_id, engine=ScriptedEngine(), source=[PROBLEM], num_prover_samples=8, **kwargs)


def test_j_is_the_fraction_of_correct_forced_answers_and_progress_telescopes():
    env = scripted_env(max_episodes=3, alpha=0.5)
    obs, info = env.reset(seed=0)
    assert obs == {"problem": PROBLEM.question, "episodes": ()}
    assert info["J"] == 1 / 8 and info["prover_answers"].count("12") == 1
    rewards, infos = [], [info]
    for step in range(3):
        obs, r, term, trunc, info = env.step(f"[ep] step {step}")
        rewards.append(r)
        infos.append(info)
    assert [i["J"] for i in infos] == [1 / 8, 3 / 8, 5 / 8, 1.0]
    assert sum(i["progress"] for i in infos[1:]) == pytest.approx(1.0 - 1 / 8)
    assert trunc and term and info["answered"]  # forced answer at the budget's end
    assert info["outcome"] == 1.0 and info["committed_answer"] == "12"  # first forced answer (J=1)
    assert sum(rewards) == pytest.approx(1.0 + 0.5 * (1.0 - 1 / 8))
    assert info["gold_answer"] == "12" and info["episodes_used"] == 3


@pytest.mark.parametrize("answer, outcome", [("12", 1.0), ("\\frac{24}{2}", 1.0), ("13", 0.0)])
def test_boxed_commit_terminates_and_is_graded(answer, outcome):
    env = scripted_env()
    env.reset(seed=0)
    _, reward, term, trunc, info = env.step(f"[ep] So 5 + 7 is \\boxed{{{answer}}}.")
    assert term and not trunc
    assert info["outcome"] == outcome and info["committed_answer"] == answer
    assert reward == pytest.approx(outcome + 1.0 * info["progress"])


def test_token_budget_truncates():
    env = scripted_env(max_episodes=10, max_tokens=12)
    env.reset(seed=0)
    _, _, _, trunc, info = env.step("[ep] one two three four five")  # 6 tokens
    assert not trunc and info["tokens_left"] == 6
    _, _, term, trunc, info = env.step("[ep] one two three four five six seven")
    assert trunc and term and info["tokens_used"] == 14


def test_no_forced_answer_on_truncation_when_disabled():
    env = scripted_env(max_episodes=1, answer_on_truncation=False)
    env.reset(seed=0)
    _, _, term, trunc, info = env.step("[ep] thinking")
    assert trunc and not term and info["outcome"] == 0.0 and not info["answered"]


def test_prover_memoizes_prefixes():
    engine = ScriptedEngine()
    prover = LLMProver(engine, num_samples=4)
    a = prover.estimate(PROBLEM, ["[ep] x"])
    calls = engine.calls
    b = prover.estimate(PROBLEM, ["[ep] x"])
    assert a == b and engine.calls == calls == 1
    prover.estimate(PROBLEM, ["[ep] x", "[ep] y"])
    assert engine.calls == 2


def test_render_ansi_shows_the_trace():
    env = gym.make("TTC-Math-v0", engine=ScriptedEngine(), source=[PROBLEM], render_mode="ansi")
    env.reset(seed=0)
    env.step("[ep] I add 5 and 7.")
    text = env.render()
    assert "What is 5 + 7?" in text and "[episode 1] [ep] I add 5 and 7." in text and "J_1 = 0.38" in text


@pytest.mark.parametrize(
    "action, error, pattern",
    [
        (42, TypeError, "action must be a str"),
        (["text"], TypeError, "action must be a str"),
        ("   \n", ValueError, "empty episode"),
        ("x" * 9000, ValueError, "at most max_episode_chars=8,000"),
    ],
)
def test_bad_actions(action, error, pattern):
    env = scripted_env()
    env.reset(seed=0)
    with pytest.raises(error, match=pattern):
        env.unwrapped.step(action)


def test_bad_arguments_and_sources(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'num_prover_samples'"):
        gym.make("TTC-Math-v0", engine=ScriptedEngine(), num_prover_sample=4)
    with pytest.raises(TypeError, match="alpha must be a number"):
        gym.make("TTC-Math-v0", engine=ScriptedEngine(), alpha="high")
    with pytest.raises(ValueError, match="max_episodes"):
        gym.make("TTC-Math-v0", engine=ScriptedEngine(), max_episodes=0)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        gym.make("TTC-Math-v0", engine=ScriptedEngine(), source=str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl.*line 2"):
        gym.make("TTC-Math-v0", engine=ScriptedEngine(), source=str(bad))
    with pytest.raises(ValueError, match="Unknown engine scheme"):
        gym.make("TTC-Math-v0", engine="trnsformers:foo")
    with pytest.raises(Exception, match="no-such-model-dir"):
        gym.make("TTC-Math-v0", engine="transformers:/no-such-model-dir")
    env = scripted_env()
    with pytest.raises(RuntimeError, match="before reset"):
        env.unwrapped.step("hello")


@pytest.mark.parametrize("env_id", ["TTC-Math-v0", "TTC-MathMeta-v0"])
def test_documented_accessors(env_id):
    """engine, template, prover and a read-only trace: what clients may use; the rest is internal."""
    env = scripted_env(env_id, max_episodes=3)
    base = env.unwrapped
    assert isinstance(base.engine, ScriptedEngine) and base.prover.engine is base.engine
    assert base.template.separator == "\n\n" and base.trace is None
    other = Problem(id="p2", question="What is 1 + 1?", answer="2", source="test")
    obs, info = env.reset(seed=0, options={"problem": other})
    assert base.trace.problem == other and base.trace.episodes == [] and base.trace.tracker.j_curve == [info["J"]]
    calls = base.prover.calls
    env.step(0 if env_id == "TTC-MathMeta-v0" else "[ep] I add.")
    assert base.prover.calls == calls + 1 and len(base.trace.episodes) == 1
    with pytest.raises(AttributeError):
        base.trace = None
    assert not any(hasattr(base, name) for name in ("settings", "source", "traces"))
    with pytest.raises(ValueError, match="accept only 'problem', 'prefix', got \\['problems'\\]"):
        env.reset(seed=0, options={"problems": [other]})
    with pytest.raises(TypeError, match="reset options must be a dict"):
        env.reset(seed=0, options=[("problem", other)])


def test_meta_env_with_scripted_engine():
    from ttc_gym.envs.math_meta import OBS_FIELDS

    env = scripted_env("TTC-MathMeta-v0", max_episodes=4)
    obs, info = env.reset(seed=0)
    fields = lambda o: dict(zip(OBS_FIELDS, o.tolist()))  # noqa: E731
    # Forced answers: one "12" (the gold answer), seven "13": J = 1/8, agreement 7 (of the wrong answer).
    assert env.observation_space.contains(obs) and info["J"] == 1 / 8
    assert fields(obs) == {"episodes_used": 0, "agreement": 7, "agreement_change": 1, "majority_changed": 2,
                           "token_bucket": 0, "last_action": 4}
    obs, r, term, trunc, info = env.step(2)  # verify: the env's model writes the episode
    assert info["episode_text"].startswith("Wait, let me double-check.")
    # 3 x "12", 5 x "13": J went up to 3/8, the agreement down to 5, the majority answer is still "13".
    assert info["J"] == 3 / 8 and info["progress"] > 0
    assert fields(obs) | {"token_bucket": 0} == {"episodes_used": 1, "agreement": 5, "agreement_change": 0,
                                                 "majority_changed": 0, "token_bucket": 0, "last_action": 2}
    obs, r, term, trunc, info = env.step(0)  # 5 x "12", 3 x "13": the same agreement, a new majority answer
    assert fields(obs)["agreement"] == 5 and fields(obs)["agreement_change"] == 1
    assert fields(obs)["majority_changed"] == 1 and fields(obs)["last_action"] == 0
    obs, r, term, trunc, info = env.step(3)  # answer now: the prover's first forced answer
    assert term and info["outcome"] == 1.0 and info["episodes_used"] == 2
    assert fields(obs)["agreement_change"] == 1 and fields(obs)["majority_changed"] == 0  # no new episode
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 4\)"):
        env.reset(seed=0)
        env.step(7)


def test_sim_heuristics_run_unchanged_on_the_meta_env():
    env = scripted_env("TTC-MathMeta-v0", max_episodes=4)
    record = run_rollout(env, AnswerAfterK(2), seed=0)
    assert record.episodes_used == 2 and record.j_curve == [1 / 8, 3 / 8, 5 / 8]


# ---- the LLM agent and strategies on a real (tiny, random) model --------------------------------


@pytest.fixture(scope="module")
def tiny_math_env():
    return make_fast_env("TTC-Math-v0", max_episode_chars=2000, max_episodes=3)


def test_llm_agent_runs_a_full_episode(tiny_math_env):
    agent = LLMAgent(tiny_math_env.unwrapped.engine, max_episode_tokens=12)
    record = run_rollout(tiny_math_env, agent, seed=0)
    assert 1 <= record.episodes_used <= 3 and len(record.j_curve) == record.episodes_used + 1
    again = run_rollout(tiny_math_env, agent, seed=0)
    assert again.j_curve == record.j_curve and again.actions == record.actions  # reproducible


def test_info_and_records_carry_what_mrts_token_axis_and_maj_at_k_need():
    """The problem prompt's length and the forced answers' mean length (MRT's token axis), and the
    forced answers at every point of the J curve (MRT's maj@k at one prefix)."""
    env = scripted_env()
    obs, info = env.reset(seed=0)
    prompt = env.unwrapped.template.reasoning_prompt(env.unwrapped.engine, PROBLEM.question, [])
    assert info["prompt_tokens"] == len(prompt.split()) > 0
    assert info["prover_answer_tokens"] == 2.0  # every scripted forced answer is 2 tokens
    agent = type("TwoEpisodes", (), {"act": lambda self, obs, info: "[ep] I add 5 and 7."})()
    record = run_rollout(env, agent, seed=0)
    extra = record.extra
    assert len(extra["point_answers"]) == len(extra["point_correct"]) == len(extra["answer_tokens"]) == len(record.j_curve)
    # J after each point = the share of right answers recorded at that point
    assert [sum(c) / len(c) for c in extra["point_correct"]] == pytest.approx(record.j_curve)
    assert extra["prompt_tokens"] == info["prompt_tokens"]


def test_llm_agent_batch_of_one_equals_act(tiny_math_env):
    agent = LLMAgent(tiny_math_env.unwrapped.engine, max_episode_tokens=8)
    obs, info = tiny_math_env.reset(seed=1)
    assert agent.act_batch([obs], [info]) == [agent.act(obs, info)]
    assert len(agent.act_batch([obs, obs], [info, info])) == 2


def test_strategies(tiny_math_env):
    llm = LLMAgent(tiny_math_env.unwrapped.engine, max_episode_tokens=12)
    record = run_rollout(tiny_math_env, ThinkUntilBudget(llm), seed=0)
    assert record.episodes_used == 3 and all("\\boxed" not in a for a in record.actions)
    record = run_rollout(tiny_math_env, StopWhenConfident(llm, threshold=0.0), seed=0)
    assert record.episodes_used == 1 and "\\boxed" in record.actions[0]
    record = run_rollout(tiny_math_env, MajorityVote(llm, k=2), seed=0)
    assert record.episodes_used <= 3 and all("\\boxed" not in a for a in record.actions[:2])
    record = run_rollout(tiny_math_env, BudgetForcing(llm, min_episodes=3), seed=0)
    assert all("\\boxed" not in a for a in record.actions[:2])


@pytest.mark.slow
def test_default_model_end_to_end():
    env = gym.make("TTC-Math-v0", max_episodes=2, num_prover_samples=4)
    agent = LLMAgent(env.unwrapped.engine, max_episode_tokens=32)
    obs, info = env.reset(seed=0)
    assert 0.0 <= info["J"] <= 1.0 and len(info["prover_answers"]) == 4
    js = [info["J"]]
    done = False
    while not done:
        obs, reward, term, trunc, info = env.step(agent.act(obs, info))
        js.append(info["J"])
        done = term or trunc
    assert info["answered"] and info["outcome"] in (0.0, 1.0)
    assert sum(np.diff(js)) == pytest.approx(js[-1] - js[0])
    assert info["tokens_used"] > 0 and "gold_answer" in info


# -- whose answer is graded when the budget runs out; the forced-answer forms ----------------------


def test_the_budget_end_commits_the_policys_own_forced_answer_when_the_prover_differs():
    """J is the prover's; the graded final answer is the policy's own forced answer (one sample from
    the env's engine with the forced-answer prompt), not the prover's first sample."""
    policy, prover = ScriptedEngine(k_correct_per_episode=(0,)), ScriptedEngine()  # the policy answers "13"
    env = gym.make("TTC-Math-v0", engine=policy, prover_engine=prover, source=[PROBLEM], num_prover_samples=8,
                   max_episodes=2)
    env.reset(seed=0)
    env.step("[ep] a")
    assert policy.calls == 0  # the policy is not asked while the budget lasts
    _, reward, term, trunc, info = env.step("[ep] b")
    assert term and trunc and info["J"] == 5 / 8 and info["prover_answers"][0] == "12"
    assert info["committed_answer"] == "13" and info["outcome"] == 0.0
    (prompts, sampling), = policy.requests
    assert sampling.n == 1 and len(prompts) == 1 and prompts[0].endswith("\\boxed{")
    assert "[ep] a\n\n[ep] b\n\nTime is up." in prompts[0]
    assert reward == pytest.approx(0.0 + 1.0 * info["progress"])


def test_the_budget_end_with_the_policy_as_prover_commits_its_first_sample_without_another_call():
    engine = ScriptedEngine()
    env = gym.make("TTC-Math-v0", engine=engine, prover_engine=engine, source=[PROBLEM], num_prover_samples=8,
                   max_episodes=2)
    assert env.unwrapped.prover.is_policy
    env.reset(seed=0)
    env.step("[ep] a")
    _, _, term, trunc, info = env.step("[ep] b")
    assert term and trunc and info["committed_answer"] == info["prover_answers"][0] == "12"
    assert info["outcome"] == 1.0 and engine.calls == 3  # J_0, J_1, J_2: no call for the answer


class BatchingEngine(ScriptedEngine):
    """A scripted engine that takes one seed per prompt (it ignores seeds): batches in one call."""

    per_prompt_seeds = True


def test_the_vector_env_samples_the_policys_forced_answers_in_one_batch():
    policy, prover = BatchingEngine(k_correct_per_episode=(8,)), ScriptedEngine(k_correct_per_episode=(0,))
    envs = gym.make_vec("TTC-Math-v0", num_envs=3, vectorization_mode="vector_entry_point", engine=policy,
                        prover_engine=prover, source=[PROBLEM], num_prover_samples=4, max_episodes=1)
    envs.reset(seed=0)
    _, _, term, trunc, infos = envs.step(["[ep] a", "[ep] So \\boxed{13}.", "[ep] c"])
    assert list(term) == [True, True, True] and list(trunc) == [True, False, True]
    assert list(infos["committed_answer"]) == ["12", "13", "12"] and list(infos["outcome"]) == [1.0, 0.0, 1.0]
    assert list(infos["J"]) == [0.0, 0.0, 0.0]  # the prover's
    (prompts, sampling), = policy.requests  # one call, for the two sub-envs the budget ended
    assert len(prompts) == 2 and sampling.n == 1


class SolutionEngine(ScriptedEngine):
    """Answers a "close_think" forced-answer prompt with a short solution that ends in a box."""

    def generate(self, prompts, sampling, *, seed):
        self.calls += 1
        self.requests.append((list(prompts), sampling))
        out = []
        for prompt in prompts:
            if prompt.endswith("1. **") and "</think>" in prompt:
                k = self.k_correct[min(prompt.count("[ep]"), len(self.k_correct) - 1)]
                texts = (["Add.** 5 + 7 = 12, not \\boxed{13}.\n\nSo the answer is $\\boxed{12}$."] * k
                         + ["Add.** 5 + 7 = 13.\n\n**Answer:** $\\boxed{13}$"] * (sampling.n - k))
                out.append([Completion(t, 20, "stop") for t in texts])
            else:
                out.append([Completion("[ep] I add 5 and 7.", 5, "stop", "\n\n")] * sampling.n)
        return out


def test_close_think_form_ends_the_thinking_block_and_grades_the_solutions_answer():
    """MRT's forced termination for reasoning models: the prompt closes `</think>` after the stop
    sentence and opens a final solution; the answer graded is the solution's last box."""
    from ttc_gym.prompts import STOP_THINKING, PromptTemplate

    template = PromptTemplate(forced_answer="close_think")
    engine = SolutionEngine()
    env = gym.make("TTC-Math-v0", engine=engine, source=[PROBLEM], num_prover_samples=8, max_episodes=3,
                   template=template)
    env.reset(seed=0)
    infos = [env.step(f"[ep] step {i}")[-1] for i in range(3)]
    assert [i["J"] for i in infos] == [3 / 8, 5 / 8, 1.0] and infos[0]["prover_answers"][:4] == ("12",) * 3 + ("13",)
    assert infos[-1]["committed_answer"] == "12" and infos[-1]["outcome"] == 1.0
    prompts, sampling = engine.requests[-1]
    assert prompts[0].endswith(STOP_THINKING + "\n</think>\n\n**Step-by-Step Explanation and Answer:**\n\n1. **")
    assert sampling.max_new_tokens == 1024 and not sampling.stop_at_closing_brace and sampling.stop == ()
    # The short boxed form stays the default.
    assert PromptTemplate().forced_answer == "boxed" and LLMProver(engine).sampling.max_new_tokens == 24


def test_close_think_form_on_a_real_engine():
    """With the tiny model: the prompt holds the closing tag, the solution is sampled to its length
    (not cut at a brace), and each answer is what the template extracts from the generated text."""
    from ttc_gym.engines.testing import tiny_random_engine
    from ttc_gym.grading import normalize_answer
    from ttc_gym.prompts import PromptTemplate

    engine = tiny_random_engine(seed=0)
    template = PromptTemplate(forced_answer="close_think", think_close_tag="</reasoning>")
    texts = []
    generate = engine.generate

    def recording(prompts, sampling, *, seed):
        rows = generate(prompts, sampling, seed=seed)
        texts.extend(c.text for row in rows for c in row)
        return rows

    engine.generate = recording
    prover = LLMProver(engine, num_samples=3, max_answer_tokens=6, template=template)
    prompt = template.forced_answer_prompt(engine, PROBLEM.question, ["[ep] I add."])
    assert "I should stop thinking" in prompt and "</reasoning>\n\n**Step-by-Step" in prompt
    estimate = prover.estimate(PROBLEM, ["[ep] I add."])
    assert len(texts) == 3 and estimate.answers == tuple(normalize_answer(template.answer_of(t)) for t in texts)
    assert template.answer_of("x \\boxed{1} then \\boxed{12}.") == "12" and template.answer_of("no answer") == ""


@pytest.mark.parametrize("kwargs, match", [
    ({"forced_answer": "think"}, "forced_answer must be one of"),
    ({"forced_answer": "close_think", "forced_answer_suffix": "Time is up. $\\boxed{"}, "close the thinking"),
    ({"forced_answer": "close_think", "think_close_tag": " "}, "think_close_tag"),
    ({"forced_answer_suffix": "Time is up."}, "open '\\\\boxed\\{'"),
])
def test_bad_forced_answer_templates_are_refused(kwargs, match):
    from ttc_gym.prompts import PromptTemplate

    with pytest.raises(ValueError, match=match):
        PromptTemplate(**kwargs)
