"""ttc-gym envs served over OpenEnv (ttc_gym.integrations.openenv): a real OpenEnv server on loopback,
real OpenEnv clients over WebSocket, two sessions at once; the results equal a local env's."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("openenv")  # in the `test` extra: CI runs this file

from tests.conftest import fast_env_kwargs  # noqa: E402
from ttc_gym.integrations.openenv import RemoteEnv, TTCEnvClient, start_server, to_jsonable  # noqa: E402

MATH_KWARGS = {**fast_env_kwargs("TTC-Math-v0"), "max_episodes": 2, "num_prover_samples": 2}
EASY = {"question": "What is 2 + 3?", "answer": "5"}


def env_kwargs(env_id: str) -> dict:
    return MATH_KWARGS if env_id == "TTC-Math-v0" else {}


def script(env_id: str, client: int) -> tuple[dict, list]:
    """(reset kwargs, actions) of client 0 / 1: a seeded problem, or (math, client 1) a given problem
    answered correctly, so that both outcomes cross the wire."""
    if env_id == "TTC-Math-v0":
        if client == 0:
            return {"seed": 11}, ["First I write the problem down and work on it.", "So it is \\boxed{7}."]
        return {"seed": 12, "options": {"problem": EASY}}, ["Adding two and three.", "The sum is \\boxed{5}."]
    rng = np.random.default_rng(100 + client)
    return {"seed": 20 + client}, [int(a) for a in rng.integers(0, 4, size=64)]


def rollout(env, reset_kwargs: dict, actions: list, barrier: threading.Barrier | None = None) -> list:
    """[(obs, info) after reset, then (obs, reward, terminated, truncated, info) per step], as JSON."""
    obs, info = env.reset(**reset_kwargs)
    trace = [to_jsonable((obs, info))]
    if barrier is not None:
        barrier.wait(timeout=120)  # both sessions are open at once before either steps
    for action in actions:
        step = env.step(action)
        trace.append(to_jsonable(step))
        if step[2] or step[3]:
            break
    return trace


def settled_threads(baseline: set, patience: float = 10.0) -> list[str]:
    """Names of threads that are not in `baseline`, after giving exiting ones a moment to finish."""
    deadline = time.monotonic() + patience
    while True:
        extra = [t for t in threading.enumerate() if t not in baseline and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            return [t.name for t in extra]
        time.sleep(0.05)


@pytest.mark.parametrize("env_id", ["TTC-Sim-v0", "TTC-Math-v0"])
def test_two_clients_run_full_episodes_at_once_and_match_a_local_env(env_id):
    from ttc_gym.grading import start_worker

    start_worker()  # the process-wide grading worker (and its reader threads) is not the server's
    baseline = set(threading.enumerate())
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def client(i: int, url: str) -> None:
        try:
            with RemoteEnv(url) as env:
                results[i] = rollout(env, *script(env_id, i), barrier=barrier)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
            barrier.abort()

    with start_server(env_id, env_kwargs(env_id), max_sessions=2) as server:
        threads = [threading.Thread(target=client, args=(i, server.url)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    assert not errors, errors
    assert settled_threads(baseline) == []  # server, sessions' executors and clients' loops are gone

    for i in range(2):
        local = gym.make(env_id, **env_kwargs(env_id))
        assert results[i] == rollout(local, *script(env_id, i)), f"client {i} differs from a local {env_id}"
        local.close()
        steps = results[i][1:]
        assert steps and (steps[-1][2] or steps[-1][3]), "the rollout ran to its end"
        for _obs, reward, _term, _trunc, info in steps:  # the env's info crosses the wire, whole
            assert {"J", "progress", "outcome", "reward"} <= set(info)
            assert reward == pytest.approx(info["reward"])
    if env_id == "TTC-Math-v0":
        assert results[0][-1][4]["outcome"] == 0.0 and results[0][-1][4]["committed_answer"] == "7"
        assert results[1][-1][4]["outcome"] == 1.0 and results[1][-1][4]["gold_answer"] == "5"
        assert results[1][0][0]["problem"].startswith("What is 2 + 3?")
        assert results[1][-1][0]["episodes"] == ["Adding two and three.", "The sum is \\boxed{5}."]
    else:
        assert results[0] != results[1]  # two sessions, two envs: different seeds, different rollouts


def test_typed_actions_errors_capacity_and_state():
    with start_server("TTC-Sim-v0", max_sessions=1) as server:
        with RemoteEnv(server.url) as env:
            with pytest.raises(RuntimeError, match="before reset"):
                env.step(0)
            env.reset(seed=0)
            with pytest.raises(RuntimeError, match="(?i)invalid message|less than or equal to 3"):
                env.step(7)  # outside Discrete(4): the typed action model rejects it
            with pytest.raises(RuntimeError, match="(?i)invalid message|integer"):
                env.step("continue")
            with pytest.raises(RuntimeError, match="reset takes seed, episode_id and options"):
                env.client.reset(seed=1, temperature=0.5)
            obs, reward, terminated, truncated, info = env.step(0)
            state = env.state()
            assert state.env_id == "TTC-Sim-v0" and state.step_count == 1 and state.seed == 0
            assert state.episode_return == pytest.approx(reward)
            other = TTCEnvClient(base_url=server.url, message_timeout_s=30).sync()
            with pytest.raises(RuntimeError, match="CAPACITY"):
                other.reset()  # max_sessions=1: the second session is refused
            other.close()
        import httpx

        schema = httpx.get(server.url + "/schema", timeout=30).json()
        assert schema["action"]["properties"]["action"]["maximum"] == 3
        assert schema["observation"]["properties"]["info"]["type"] == "object"


def test_math_schema_types_the_episode_text():
    with start_server("TTC-Math-v0", MATH_KWARGS, max_sessions=1) as server:
        import httpx

        schema = httpx.get(server.url + "/schema", timeout=30).json()
        with RemoteEnv(server.url) as env:
            env.reset(seed=0)
            with pytest.raises(RuntimeError, match="(?i)invalid message|at least 1 character"):
                env.step("")
    action = schema["action"]["properties"]["action"]
    assert action["type"] == "string" and action["maxLength"] == MATH_KWARGS["max_episode_chars"]


def test_unknown_env_and_the_import_guard():
    with pytest.raises(ValueError, match="TTC-Math-v0"):
        start_server("TTC-Nope-v0")
    code = ("import sys; sys.modules['openenv'] = None\n"
            "try:\n    import ttc_gym.integrations.openenv\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "pip install 'ttc-gym[openenv]'" in out


def test_cli_serve_rejects_an_unknown_env(capsys):
    from ttc_gym.cli import main

    assert main(["serve", "TTC-Nope-v0", "--port", "0"]) == 2
    assert "TTC-Sim-v0" in capsys.readouterr().err
