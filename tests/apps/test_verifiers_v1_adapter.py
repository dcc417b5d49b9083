"""TTC-Math-v0 as a verifiers 0.4 environment (ttc_gym.integrations.verifiers_v1, taskset "ttc-gym-verifiers"),
run by verifiers 0.4's own eval runner against a loopback stub model server (tests/apps/verifiers_v1_check.py).

verifiers 0.4 pins mcp==2.0.0 and the `test` extra's openenv needs mcp<2, so the two cannot share an
environment. When this Python has no verifiers 0.4, the test builds one: a venv (cached, under the temp
folder or $TTC_GYM_VF04_VENV) with verifiers 0.4 and uv from PyPI, which sees this Python's packages
(ttc-gym, torch, ...) after its own. That needs PyPI and takes minutes the first time: marked slow (CI
runs it)."""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "tests" / "apps" / "verifiers_v1_check.py"
VERIFIERS_V1 = "verifiers>=0.4,<0.5"


def _outer_site_dirs() -> list[str]:
    dirs = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    return list(dict.fromkeys(d for d in dirs if d.endswith(("site-packages", "dist-packages")) and os.path.isdir(d)))


def _has_verifiers_04(python: str) -> bool:
    """Whether `python` has verifiers 0.4.x and uv (verifiers 0.3 ships only a preview of `verifiers.v1`)."""
    code = ("import importlib.metadata as m, sys, uv; v = m.version('verifiers').split('.'); "
            "sys.exit(0 if (int(v[0]), int(v[1])) >= (0, 4) else 1)")
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0


def python_with_verifiers_v1() -> tuple[str, dict]:
    """(a Python with verifiers 0.4 and ttc-gym, the environment to run it with)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if _has_verifiers_04(sys.executable):
        return sys.executable, env
    venv = Path(os.environ.get("TTC_GYM_VF04_VENV", Path(tempfile.gettempdir()) / "ttc-gym-vf04-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    if not _has_verifiers_04(str(python)):
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", VERIFIERS_V1, "uv>=0.5"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"could not install {VERIFIERS_V1} into {venv}:\n{done.stderr[-3000:]}"
    # This Python's packages (ttc-gym's editable install, torch, ...) after the venv's own.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in _outer_site_dirs()]
    Path(purelib, "zz_ttc_gym_outer.pth").write_text("\n".join(lines) + "\n")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # verifiers runs its harness with uv
    return str(python), env


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory) -> tuple[list[dict], dict]:
    python, env = python_with_verifiers_v1()
    out = tmp_path_factory.mktemp("vf04")
    done = subprocess.run([python, str(CHECK), str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [r for r in lines if "problem" in r], lines[-1]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_one_turn_per_episode_with_outcome_progress_and_per_turn_j(rollouts):
    rows, server = rollouts
    by_problem = {r["problem"]: r for r in rows}
    assert sorted(by_problem) == ["What is 2 + 3?", "What is 6 * 7?", "What is 7 - 4?"]
    assert all(r["ok"] and not r["errors"] for r in rows)
    k = 3
    right, wrong, unanswered = by_problem["What is 2 + 3?"], by_problem["What is 7 - 4?"], by_problem["What is 6 * 7?"]
    # The scripted prover: J = (episodes so far + 1) / K, each turn recorded as a metric J_j.
    assert right["ttc"]["j_curve"] == pytest.approx([1 / k, 2 / k, 1.0])
    assert [right["metrics"][f"J_{j}"] for j in range(3)] == pytest.approx([1 / k, 2 / k, 1.0])
    assert right["metrics"]["progress_1"] == pytest.approx(1 / k) and right["num_turns"] == 2
    # Rewards: outcome (weight 1) + progress J_final - J_0 (weight alpha = 0.5) = the env's return.
    assert right["rewards"]["outcome"] == [1.0, 1.0] and right["rewards"]["progress"] == pytest.approx([2 / k, 0.5])
    assert right["reward"] == pytest.approx(sum(right["ttc"]["step_rewards"])) == pytest.approx(1 + 0.5 * 2 / k)
    assert right["ttc"]["committed_answer"] == "5"
    assert wrong["rewards"]["outcome"][0] == 0.0 and wrong["ttc"]["committed_answer"] == "4"
    # No answer: the budget H = 3 ends it after three turns; the reasoner's forced answer is graded.
    assert unanswered["num_turns"] == 3 and unanswered["metrics"]["episodes_used"] == 3.0
    assert unanswered["metrics"]["ended_by_harness"] == 0.0 and unanswered["metrics"]["J_3"] == pytest.approx(1.0)
    # The prompt is the problem only: the gold answer never reaches the model.
    assert server["first"][0]["content"].endswith("Put the final answer in \\boxed{}.")
    assert all(r["prompt"].startswith(r["problem"]) for r in rows)
    assert server["requests"] == 2 + 2 + 3


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_rewards_equal_the_env_replayed_on_the_same_episodes(rollouts):
    """Each rollout's J curve and outcome are what TTC-Math-v0 gives for the same episodes, stepped directly."""
    import gymnasium as gym

    sys.path.insert(0, str(CHECK.parent))
    try:
        import verifiers_v1_check as check
    finally:
        sys.path.remove(str(CHECK.parent))
    from ttc_gym.engines.testing import tiny_random_engine
    from ttc_gym.problems import Problem

    rows, _ = rollouts
    kwargs = {**check.TTC_ENV, "engine": tiny_random_engine(), "prover_engine": check.CountingProver()}
    for row in rows:
        gold = next(p for p in check.PROBLEMS if p["question"] == row["problem"])
        env = gym.make("TTC-Math-v0", **kwargs, source=Problem(id=gold["id"], question=gold["question"],
                                                               answer=gold["answer"], source="test"))
        _, info = env.reset(seed=row_seed(rows, row))
        curve, outcome = [info["J"]], 0.0
        for text in row["ttc"]["episodes"]:
            _, _, terminated, truncated, info = env.step(text)
            curve.append(info["J"])
            outcome = info["outcome"]
        assert curve == pytest.approx(row["ttc"]["j_curve"]) and outcome == row["ttc"]["outcome"]


def row_seed(rows: list[dict], row: dict) -> int:
    """Task i of the taskset resets its env with seed 0 + i (the taskset's order is the source file's)."""
    order = ["What is 2 + 3?", "What is 7 - 4?", "What is 6 * 7?"]
    return order.index(row["problem"])


def test_the_adapter_refuses_verifiers_03_with_one_line(monkeypatch):
    """With verifiers 0.3.x (whose `verifiers.v1` is a preview), importing the 0.4 adapter says so in one line."""
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.3.1" if name == "verifiers" else "0")
    monkeypatch.delitem(sys.modules, "ttc_gym.integrations.verifiers_v1", raising=False)
    with pytest.raises(ImportError) as info:
        importlib.import_module("ttc_gym.integrations.verifiers_v1")
    message = str(info.value)
    assert "\n" not in message and "verifiers 0.3.1 is installed" in message
    assert "pip install 'ttc-gym[verifiers-v1]'" in message


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_openenv_beside_verifiers_04_is_refused_in_one_line():
    """The real libraries: verifiers 0.4's mcp 2.0.0 (the venv's own) with openenv 0.10 and fastmcp 3 (this
    Python's, seen after it), as after `pip install 'ttc-gym[openenv]'` then `'ttc-gym[verifiers-v1]'`: the
    openenv adapter refuses in one line naming both extras, instead of fastmcp's "client support is not
    installed" (ttc_gym/integrations/exclusive_extras.py)."""
    python, env = python_with_verifiers_v1()
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('openenv') else 1)"
    if subprocess.run([python, "-c", probe], env=env, timeout=120).returncode != 0:
        pytest.skip("openenv is not installed in this Python (the `test` extra has it)")
    done = subprocess.run([python, "-c", "import ttc_gym.integrations.openenv"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ttc-gym[openenv] cannot run with the installed mcp 2.0.0"), done.stderr[-2000:]
    assert "[verifiers-v1]" in last
