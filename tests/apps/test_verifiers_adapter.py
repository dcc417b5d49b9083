"""TTC-Math-v0 as a verifiers environment (ttc_gym.integrations.verifiers): rollouts through the real
verifiers library (`evaluate`, its OpenAI chat-completions client over the real `openai` library),
with a stub model server (canned replies over an in-process HTTP transport), the tiny test model as
the env's engine and a scripted prover whose J grows with each episode; the rubric's outcome and
progress equal what ttc-gym's grader and prover give."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest

vf = pytest.importorskip("verifiers")  # in the `test` extra: CI runs this file
httpx = pytest.importorskip("httpx")

from tests.conftest import tiny_engine  # noqa: E402
from ttc_gym.engines.base import Completion  # noqa: E402
from ttc_gym.answer_extraction import extract_boxed  # noqa: E402
from ttc_gym.grading import compare_answers, normalize_answer  # noqa: E402
from ttc_gym.integrations.verifiers import CONTINUE_MESSAGE, load_environment  # noqa: E402
from ttc_gym.engines.testing import ScriptedChatEngine  # noqa: E402

EP = "[ep]"  # marks an episode, so that the scripted prover can count them
PROBLEMS = [
    {"question": "What is 2 + 3?", "answer": "5"},
    {"question": "What is 7 - 4?", "answer": "3"},
    {"question": "What is 6 * 7?", "answer": "42"},
]
# The stub model's replies per problem, turn by turn: right, wrong, and never answering (the budget
# H = 3 ends it; the reasoner's forced answer is graded).
REPLIES = {
    "2 + 3": [f"{EP} Two plus three.", f"{EP} The sum is \\boxed{{5}}."],
    "7 - 4": [f"{EP} Seven minus four.", f"{EP} Hmm, I think it is \\boxed{{4}}."],
    "6 * 7": [f"{EP} Six times seven.", f"{EP} Let me recount.", f"{EP} Still counting."],
}


class CountingProver(ScriptedChatEngine):
    """A scripted prover engine: of its n forced answers, (episodes so far + 1) are the gold answer,
    the others wrong, so J = 1/3, 2/3, 1 with K = 3 (a known, moving J curve)."""

    name = "counting-prover"

    def generate(self, prompts, sampling, *, seed):
        out = []
        for prompt in prompts:
            gold = next(p["answer"] for p in PROBLEMS if p["question"] in prompt)
            k = min(sampling.n, prompt.count(EP) + 1)
            texts = [gold + "}$"] * k + ["1000}$"] * (sampling.n - k)
            out.append([Completion(t, 2, "stop", "}$") for t in texts])
        return out


PROVER = CountingProver()
ENV_KWARGS = {"num_prover_samples": 3, "max_episodes": 3, "max_answer_tokens": 8, "max_episode_chars": 200,
              "prover_engine": PROVER}


class StubChatServer:
    """An OpenAI chat-completions endpoint in-process (an httpx transport): replies from REPLIES by the
    problem in the first user message and the number of assistant turns so far; records requests."""

    def __init__(self):
        self.requests: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/chat/completions"), request.url
        body = json.loads(request.content)
        self.requests.append(body)
        messages = body["messages"]
        question = next(m["content"] for m in messages if m["role"] == "user")
        turn = sum(m["role"] == "assistant" for m in messages)
        script = next(replies for key, replies in REPLIES.items() if key in question)
        return httpx.Response(200, json={
            "id": f"stub-{len(self.requests)}", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": script[turn]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })


def stub_client(server: StubChatServer):
    from openai import AsyncOpenAI
    from verifiers.clients import OpenAIChatCompletionsClient

    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return OpenAIChatCompletionsClient(AsyncOpenAI(base_url="http://stub.invalid/v1", api_key="none", http_client=http))


def rows():
    from ttc_gym.integrations.verifiers import problem_rows

    return problem_rows(PROBLEMS, num_examples=len(PROBLEMS), seed=5)


@pytest.mark.parametrize("alpha", [0.5])
def test_rollouts_through_evaluate_score_outcome_and_progress_as_ttc_gym_does(alpha):
    env = vf.load_environment("ttc_gym.integrations.verifiers", rows=rows(), engine=tiny_engine(), alpha=alpha,
                              **ENV_KWARGS)
    assert type(env).__name__ == "TTCMathVerifiersEnv" and isinstance(env, vf.MultiTurnEnv)
    server = StubChatServer()
    results = env.evaluate_sync(stub_client(server), model="stub", num_examples=3, rollouts_per_example=1,
                                state_columns=["ttc_episodes", "ttc_step_rewards", "ttc_j_curve", "ttc_infos"])
    outputs = sorted(results["outputs"], key=lambda o: o["example_id"])
    assert len(outputs) == 3 and all(o.get("error") is None for o in outputs), [o.get("error") for o in outputs]
    assert {o["stop_condition"] for o in outputs} == {"ttc_rollout_ended"}  # the ttc-gym env ended each

    local = gym.make("TTC-Math-v0", engine=tiny_engine(), **ENV_KWARGS)  # the same prover, asked directly
    prover = local.unwrapped.prover
    from ttc_gym.problems import as_problem

    expected_outcomes = []
    for out, row in zip(outputs, rows()):
        problem = as_problem(row["info"]["problem"])
        key = next(k for k in REPLIES if k in problem.question)
        episodes = REPLIES[key][: len(out["ttc_episodes"])]
        assert out["ttc_episodes"] == episodes
        # progress: the prover's J after the last episode minus its J before any
        j0, j_end = prover.estimate(problem, []).j, prover.estimate(problem, episodes).j
        assert out["metrics"]["progress"] == pytest.approx(j_end - j0)
        assert out["metrics"]["j_initial"] == pytest.approx(j0) and out["metrics"]["j_final"] == pytest.approx(j_end)
        assert out["ttc_j_curve"] == pytest.approx([prover.estimate(problem, episodes[:k]).j
                                                    for k in range(len(episodes) + 1)])
        # outcome: ttc-gym's grader on the committed answer (or the reasoner's forced one at the budget)
        committed = extract_boxed(episodes[-1])
        if committed is not None:
            expected = float(compare_answers(normalize_answer(committed), problem.answer) is True)
        else:
            expected = float(prover.policy_answer(problem, episodes)[1])  # the policy's (tiny model's) own
            assert len(episodes) == ENV_KWARGS["max_episodes"]
        assert out["metrics"]["outcome"] == expected
        expected_outcomes.append(expected)
        # weights: reward = outcome + alpha * progress = the sum of the per-episode ttc-gym rewards
        assert out["reward"] == pytest.approx(expected + alpha * (j_end - j0))
        assert sum(out["ttc_step_rewards"]) == pytest.approx(out["reward"])
        assert out["metrics"]["episodes_used"] == len(episodes)
    assert expected_outcomes[:2] == [1.0, 0.0]  # a right and a wrong committed answer
    assert [o["metrics"]["progress"] for o in outputs] == pytest.approx([2 / 3] * 3)  # J moved: 1/3 -> 1

    # each turn is one episode: the model saw the problem, then its own episodes and the env's cue
    longest = max(server.requests, key=lambda r: len(r["messages"]))
    roles = [m["role"] for m in longest["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert longest["messages"][2]["content"] == CONTINUE_MESSAGE
    local.close()


def test_per_turn_rewards_sit_on_the_trajectory():
    import asyncio

    env = load_environment(rows=rows()[:1], engine=tiny_engine(), **ENV_KWARGS)
    server = StubChatServer()
    row = env.get_dataset()[0]
    state = asyncio.run(env.rollout(dict(row), stub_client(server), "stub", {}))
    assert [step["reward"] for step in state["trajectory"]] == state["ttc_step_rewards"]
    assert state["trajectory"][-1]["extras"]["ttc_info"]["answered"] is True
    assert "ttc_env" not in state  # the cleanup closed and dropped the rollout's env


def test_an_empty_reply_stops_the_rollout_with_an_error():
    import asyncio

    env = load_environment(rows=rows()[:1], engine=tiny_engine(), **ENV_KWARGS)
    server = StubChatServer()
    REPLIES["2 + 3"].insert(0, "   ")
    try:
        state = asyncio.run(env.rollout(dict(env.get_dataset()[0]), stub_client(server), "stub", {}))
    finally:
        REPLIES["2 + 3"].pop(0)
    assert state["stop_condition"] == "has_error" and "not a valid TTC-Math-v0 episode" in str(state["error"])
    assert state["ttc_episodes"] == [] and len(state["trajectory"]) == 1


def test_bad_arguments_fail_when_loading():
    with pytest.raises(ValueError, match="num_prover_samples"):
        load_environment(rows=rows(), engine=tiny_engine(), num_prover_sample=3)
    with pytest.raises(ValueError, match="may not set 'source'"):
        from ttc_gym.integrations.verifiers import TTCMathVerifiersEnv

        TTCMathVerifiersEnv(env_kwargs={"source": "procedural"}, dataset=None)


def test_import_guard_names_the_extra():
    code = ("import sys; sys.modules['verifiers'] = None\n"
            "try:\n    import ttc_gym.integrations.verifiers\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "pip install 'ttc-gym[verifiers]'" in out


def test_verifiers_04_is_refused_up_front_with_one_line(monkeypatch):
    """verifiers 0.4 has only its v1 API (`verifiers.v1`, no classic `MultiTurnEnv`): importing the
    adapter says which versions are supported and how to install one, in one line."""
    import types

    v04 = types.ModuleType("verifiers")
    v04.__version__ = "0.4.0"
    v04.v1 = types.ModuleType("verifiers.v1")
    monkeypatch.setitem(sys.modules, "verifiers", v04)
    monkeypatch.delitem(sys.modules, "ttc_gym.integrations.verifiers", raising=False)
    import importlib

    with pytest.raises(ImportError) as info:
        importlib.import_module("ttc_gym.integrations.verifiers")
    message = str(info.value)
    assert "\n" not in message and "verifiers 0.4.0 is installed" in message
    assert "ttc_gym.integrations.verifiers_v1" in message and "pip install 'ttc-gym[verifiers]'" in message
    monkeypatch.delitem(sys.modules, "ttc_gym.integrations.verifiers", raising=False)
