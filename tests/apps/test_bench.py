"""The benchmark runner (`ttc_gym.bench`, `ttc-gym bench`): resume after a kill, ranking on TTC-Sim-v0,
metrics on hand-computed records, bad input caught before any compute, the CLI end to end."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from rich.console import Console

import ttc_gym.bench.runner as runner
from ttc_gym.bench import agent_registry, evaluator, folder_lock, results_file
from ttc_gym.bench import BenchConfig, parse_agent_spec, parse_budget, prepare, run_bench, serial_executor
from ttc_gym.bench.report import summarize_results
from ttc_gym.budget import Budget
from ttc_gym.cli import main
from ttc_gym.metrics import bootstrap_ci, maj_at_k_graded, mean_curve, paired_difference

# Cheap agents: a little Q-learning (trained in well under a second), fixed strategies, the oracle and the
# per-problem-seeded random agent (whose actions must not depend on the order problems are run in).
FAST_AGENTS = ("oracle", "q-learning:steps=20000", "answer-after:2", "random")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def run(tmp_path: Path, name: str, **kwargs) -> runner.BenchResult:
    config = BenchConfig(
        agents=kwargs.pop("agents", FAST_AGENTS), budgets=kwargs.pop("budgets", (2, 4)),
        num_problems=kwargs.pop("num_problems", 12), out_dir=str(tmp_path / name),
        **{"env_id": "TTC-Sim-v0", **kwargs.pop("config", {})},
    )
    return run_bench(config, progress=False, plots=kwargs.pop("plots", False), console=quiet(), **kwargs)


# ----------------------------------------------------------------------------------------------------
# Resume


def test_resume_after_a_kill_recomputes_nothing_and_matches_an_uninterrupted_run(tmp_path):
    full = run(tmp_path, "full")
    total = len(FAST_AGENTS) * 2 * 12
    assert full.computed == total

    def killed_after(n):
        def executor(items, evaluate):
            for k, item in enumerate(items):
                if k == n:
                    raise KeyboardInterrupt  # what Ctrl-C (or a kill between writes) leaves behind
                yield evaluate(item)
        return executor

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "killed", executor=killed_after(31))
    results = tmp_path / "killed" / "results.jsonl"
    assert len(results.read_text().splitlines()) == 31  # every finished problem was written at once

    # A kill in the middle of a write leaves half a line: resume drops it and recomputes that problem.
    with open(results, "a") as f:
        f.write('{"agent": "random", "budget": "H=2", "pro')

    evaluated = []

    def counting(items, evaluate):
        evaluated.extend(item.key for item in items)
        yield from serial_executor(items, evaluate)

    resumed = run(tmp_path, "killed", executor=counting, resume=True)
    done_before = {results_file.record_key(json.loads(line)) for line in results.read_text().splitlines()[:31]}
    assert len(evaluated) == total - 31 and resumed.computed == total - 31
    assert not done_before & set(evaluated)  # finished problems were not recomputed
    assert len(results.read_text().splitlines()) == total
    assert resumed.summary == full.summary
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == json.loads(
        (tmp_path / "full" / "summary.json").read_text()
    )

    # Resuming a finished run evaluates nothing and gives the same summary again.
    again = run(tmp_path, "killed", executor=counting, resume=True)
    assert again.computed == 0 and again.summary == full.summary


def test_resume_refuses_results_of_another_configuration(tmp_path):
    run(tmp_path, "a", agents=("answer-after:2",), num_problems=3)
    with pytest.raises(ValueError, match=r"cannot resume.*budgets"):
        run(tmp_path, "a", agents=("answer-after:2",), num_problems=3, budgets=(2, 5), resume=True)
    with pytest.raises(ValueError, match=r"cannot resume.*agents"):
        run(tmp_path, "a", agents=("answer-after:3",), num_problems=3, resume=True)
    with pytest.raises(FileExistsError, match="--resume"):  # neither resume nor overwrite
        run(tmp_path, "a", agents=("answer-after:2",), num_problems=3)
    fresh = run(tmp_path, "a", agents=("answer-after:3",), num_problems=3, overwrite=True)
    assert fresh.computed == 2 * 3


def test_the_executor_seam_takes_a_picklable_evaluator_and_any_completion_order(tmp_path):
    """What a Ray or process-pool executor does: ship the evaluator, finish items in any order."""

    def remote_reversed(items, evaluate):
        for item in reversed(list(items)):
            yield pickle.loads(pickle.dumps(evaluate))(item)

    a = run(tmp_path, "serial", num_problems=5)
    b = run(tmp_path, "remote", num_problems=5, executor=remote_reversed)
    assert a.summary == b.summary


# ----------------------------------------------------------------------------------------------------
# Ranking on TTC-Sim-v0


def test_oracle_ranks_first_with_the_lowest_regret_on_the_sim(tmp_path):
    agents = ("oracle", "q-learning", "answer-when-confident:0.9", "never-verify", "answer-after:3", "random")
    result = run(tmp_path, "rank", agents=agents, budgets=(2, 4, 10), num_problems=200)
    for budget in ("H=2", "H=4", "H=10"):
        rows = [r for r in result.summary["rows"] if r["budget"] == budget]
        assert rows[0]["agent"] == "oracle" and rows[0]["rank"] == 1
        means = [r["metrics"]["return"]["mean"] for r in rows]
        assert means == sorted(means, reverse=True)
        for metric in ("token_regret", "episode_regret"):
            oracle = rows[0]["metrics"][metric]["mean"]
            assert all(oracle <= r["metrics"][metric]["mean"] + 1e-12 for r in rows), (budget, metric)
        # Intervals tell real differences from noise: random is far worse, significantly.
        worst = next(r for r in rows if r["agent"] == "random")
        assert worst["vs_best"]["significant"] and worst["vs_best"]["diff"] < 0
    j_stars = {b["label"]: b["j_star"] for b in result.summary["budgets"]}
    assert j_stars["H=2"] < j_stars["H=4"] < j_stars["H=10"] < 1


# ----------------------------------------------------------------------------------------------------
# Metrics on hand-computed records


def test_sim_episode_regret_uses_the_j_star_curve_and_the_summary_names_it(tmp_path):
    from ttc_gym.agents.oracle import j_star_curve

    result = run(tmp_path, "jstar", agents=("oracle-accuracy", "answer-after:2"), budgets=(4,), num_problems=40)
    budget = result.summary["budgets"][0]
    env = gym.make("TTC-Sim-v0", max_episodes=4)
    curve = j_star_curve(env.unwrapped.model)
    assert budget["episode_regret_comparator"] == "curve J*_j"
    assert "normalized_token_regret" in budget["token_regret_convention"]
    assert "pooled over episodes" in budget["maj_convention"]
    assert budget["j_star_curve"] == pytest.approx(curve.tolist())
    assert budget["j_star"] == pytest.approx(curve[-1])
    # answer-after:2 answers after 2 episodes: its regret is sum_j (J*_j - J_j) against the curve.
    row = next(r for r in result.summary["rows"] if r["agent"] == "answer-after:2")
    j_mean = np.array(row["j_curve"]["mean"])
    assert row["metrics"]["episode_regret"]["mean"] == pytest.approx(float(np.sum(curve[1:] - j_mean[1:])), abs=1e-9)


def _record(agent, seed, j_curve, outcome, reward, answers=None, correct=None):
    episodes = len(j_curve) - 1
    extra = {} if answers is None else {"prover_answers": answers, "prover_correct": correct}
    return {
        "agent": agent, "budget": "H=2", "problem": seed, "seed": seed, "total_reward": reward,
        "outcome": outcome, "episodes_used": episodes, "tokens_used": 100 * episodes, "j_curve": j_curve,
        "token_curve": [100 * i for i in range(episodes + 1)], "actions": [], "extra": extra,
    }


def test_summary_matches_hand_computed_values():
    records = [
        # agent a: J 0 -> 0.5 -> 1 (correct), and 0 -> 1 then answered (correct)
        _record("a", 0, [0.0, 0.5, 1.0], 1.0, 2.0, [["3", "4"], ["4", "4"]], [[False, True], [True, True]]),
        _record("a", 1, [0.0, 1.0], 1.0, 2.0, [["7", "7"]], [[True, True]]),
        # agent b: J 0 -> 0 -> 0.5 (wrong), and 0 -> 0.5 then answered (correct)
        _record("b", 0, [0.0, 0.0, 0.5], 0.0, 0.5, [["3", "3"], ["3", "4"]], [[False, False], [False, True]]),
        _record("b", 1, [0.0, 0.5], 1.0, 1.5, [["5", "6"]], [[True, False]]),
    ]
    budgets = {"H=2": {"max_episodes": 2, "max_tokens": None, "j_star": 1.0, "budget_tokens": 200}}
    s = summarize_results(records[::-1], agents=["b", "a"], budgets=budgets, num_problems=2, rank_by="accuracy")
    rows = {r["agent"]: r for r in s["rows"]}
    a, b = rows["a"]["metrics"], rows["b"]["metrics"]
    assert [r["agent"] for r in s["rows"]] == ["a", "b"] and rows["a"]["rank"] == 1
    assert a["accuracy"]["mean"] == 1.0 and b["accuracy"]["mean"] == 0.5
    assert b["accuracy"]["se"] == pytest.approx(0.5)  # std([0, 1], ddof=1) / sqrt(2)
    assert a["return"]["mean"] == 2.0 and b["return"]["mean"] == 1.0
    # Episode regret (J* = 1, curves padded to H = 2): a: (0.5 + 0) and (0 + 0) -> 0.25; b: (1 + 0.5), (0.5 + 0.5) -> 1.25
    assert a["episode_regret"]["mean"] == pytest.approx(0.25)
    assert b["episode_regret"]["mean"] == pytest.approx(1.25)
    # Token regret over C0 = 200: a: area of 0->0.5->1 = (25 + 75)/200 = 0.5 -> 0.5; 0->1 then 1: (50 + 100)/200
    # = 0.75 -> 0.25; mean 0.375. b: (0 + 25)/200 -> 0.875; (25 + 50)/200 -> 0.625; mean 0.75.
    assert a["token_regret"]["mean"] == pytest.approx(0.375)
    assert b["token_regret"]["mean"] == pytest.approx(0.75)
    # maj@k over episodes: a1: k=1 tie "3"/"4" -> first seen "3" (wrong), k=2 "4" 3 of 4 (right); a2: "7"
    # (right, held). b1: k=1 "3" (wrong), k=2 "3" 3 of 4 (wrong); b2: tie "5"/"6" -> "5" (right, held).
    assert rows["a"]["maj_curve"]["mean"] == pytest.approx([0.5, 1.0])
    assert rows["b"]["maj_curve"]["mean"] == pytest.approx([0.5, 0.5])
    assert a["maj_accuracy"]["mean"] == 1.0 and b["maj_accuracy"]["mean"] == 0.5
    # Mean J curve per episode: a: [0, 0.75, 1]; b: [0, 0.25, 0.5]
    assert rows["a"]["j_curve"]["mean"] == pytest.approx([0.0, 0.75, 1.0])
    assert rows["b"]["j_curve"]["mean"] == pytest.approx([0.0, 0.25, 0.5])
    # Paired difference b - a on accuracy: [-1, 0] -> mean -0.5, se 0.5: not significant with 2 problems.
    v = rows["b"]["vs_best"]
    assert (v["agent"], v["metric"]) == ("a", "accuracy")
    assert v["diff"] == pytest.approx(-0.5) and v["se"] == pytest.approx(0.5) and not v["significant"]
    lo, hi = a["return"]["ci_low"], a["return"]["ci_high"]
    assert lo == hi == 2.0


def test_new_metric_helpers():
    assert maj_at_k_graded([["1", "2"], ["2"]], [[True, False], [False]]) == [True, False]
    with pytest.raises(ValueError, match="one grade per answer"):
        maj_at_k_graded([["1"]], [[True, False]])
    assert paired_difference([1.0, 2.0, 4.0], [0.0, 1.0, 1.0]) == pytest.approx((5 / 3, np.std([1, 1, 3], ddof=1) / np.sqrt(3)))
    mean, se = mean_curve([[0.0, 1.0], [0.0, 0.5, 0.7]], 3)
    np.testing.assert_allclose(mean, [0.0, 0.75, 0.85])
    np.testing.assert_allclose(se, [0.0, 0.25, 0.15])
    x = np.random.default_rng(0).random((50, 3))
    lo, hi = bootstrap_ci(x, seed=3, num_resamples=500)
    for k in range(3):  # columns of a 2-D call = separate 1-D calls with the same draws
        assert (lo[k], hi[k]) == pytest.approx(bootstrap_ci(x[:, k], seed=3, num_resamples=500))


# ----------------------------------------------------------------------------------------------------
# Agent specs and budgets


def test_agent_specs_parse():
    spec = parse_agent_spec("answer-when-confident:0.8,patience=3")
    assert (spec.name, spec.args, dict(spec.kwargs)) == ("answer-when-confident", (0.8,), {"patience": 3})
    assert parse_agent_spec("ppo:/tmp/model.zip").args == ("/tmp/model.zip",)
    spec = parse_agent_spec("ttc_gym.agents.oracle:OracleAgent.from_env")
    assert spec.name is None and spec.entry_point == "ttc_gym.agents.oracle:OracleAgent.from_env"
    assert parse_budget("4") == Budget(4, None) and parse_budget("4:2048") == Budget(4, 2048)
    assert parse_budget(":2048") == Budget(None, 2048)


def test_an_import_path_agent_runs(tmp_path):
    result = run(tmp_path, "path", agents=("ttc_gym.agents.oracle:OracleAgent.from_env", "answer-after:1"), num_problems=4)
    assert result.summary["rows"][0]["agent"] == "ttc_gym.agents.oracle:OracleAgent.from_env"


# ----------------------------------------------------------------------------------------------------
# Bad input: clear errors before any compute


@pytest.fixture
def no_compute(monkeypatch):
    """Fails the test if an agent is built (trained) or a problem evaluated."""

    def forbidden(*args, **kwargs):
        raise AssertionError("compute started before the bad input was reported")

    monkeypatch.setattr(evaluator, "build_agent", forbidden)
    monkeypatch.setattr(evaluator.ItemEvaluator, "__call__", forbidden)


@pytest.mark.parametrize(
    "config, error, pattern",
    [
        ({"agents": ("oracel",)}, ValueError, "Unknown agent 'oracel'. Did you mean 'oracle'"),
        ({"agents": ("answer-aftr:3",)}, ValueError, "Did you mean 'answer-after'"),
        ({"agents": ("nosuchpkg.mod:make",)}, ImportError, "cannot import module 'nosuchpkg.mod'"),
        ({"agents": ("ttc_gym.agents.factories:no_such_factory",)}, AttributeError, "has no attribute 'no_such_factory'"),
        ({"agents": ("q-learning", "answer-when-confident:1.5")}, ValueError, r"answer-when-confident:1.5.*threshold must be <= 1"),
        ({"agents": ("q-learning:step=10",)}, ValueError, "unknown argument 'step'. Did you mean 'steps'"),
        ({"agents": ("answer-after:1,2,3",)}, ValueError, "too many positional arguments"),
        ({"agents": ("ppo:/no/such/model.zip",)}, FileNotFoundError, "is not a file"),
        ({"agents": ("oracle", "oracle")}, ValueError, "listed twice"),
        ({"env_id": "TTC-Sim-v1"}, ValueError, "Unknown env 'TTC-Sim-v1'. Did you mean 'TTC-Sim-v0'"),
        ({"budgets": (0,)}, ValueError, r"max_episodes \(H\) must be >= 1, got 0"),
        ({"budgets": (-3,)}, ValueError, r"must be >= 1, got -3"),
        ({"budgets": (2.5,)}, TypeError, "must be an integer H"),
        ({"budgets": ("2.5",)}, ValueError, "H \\(episodes\\) must be an integer, got '2.5'"),
        ({"budgets": (5000,)}, ValueError, r"invalid budget 5000: max_episodes \(H\) must be <= 1000, got 5000"),
        ({"budgets": ("4:2048",)}, ValueError, "episode counts H only"),
        ({"budgets": (4, 4)}, ValueError, "listed twice"),
        ({"num_problems": 0}, ValueError, "num_problems must be >= 1"),
        ({"rank_by": "acuracy"}, ValueError, "Did you mean 'accuracy'"),
        ({"env_kwargs": {"max_episodes": 3}}, ValueError, "through budgets"),
        ({"env_kwargs": {"heterogenity": 0.5}}, ValueError, "Did you mean 'heterogeneity'"),
        ({"j_star": 1.5}, ValueError, "j_star must be <= 1"),
    ],
)
def test_bad_input_fails_before_compute(tmp_path, no_compute, config, error, pattern):
    config = {"env_id": "TTC-Sim-v0", "agents": ("answer-after:2",), "budgets": (2,), "num_problems": 2, **config}
    with pytest.raises(error, match=pattern):
        run_bench(BenchConfig(out_dir=str(tmp_path / "out"), **config), progress=False, console=quiet())
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_unwritable_output_folder_fails_before_compute(tmp_path, no_compute):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="is not writable"):
        prepare(BenchConfig(env_id="TTC-Sim-v0", agents=("oracle",), budgets=(2,), out_dir=str(blocker / "out")))


def test_import_of_ttc_gym_bench_loads_no_agent_env_or_heavy_code():
    code = (
        "import sys, ttc_gym.bench, ttc_gym.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('agents', 'envs', 'torch', 'stable_baselines3', "
        "'matplotlib')]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ----------------------------------------------------------------------------------------------------
# CLI


def test_cli_bench_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--agents", "--budgets", "--problems", "--resume", "--out", "--seed"):
        assert flag in out


def test_cli_bench_tiny_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--env", "TTC-Sim-v0", "--agents", "oracle", "answer-after:2", "random", "--budgets", "2", "3", "--problems", "6",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "oracle" in printed.out and "TTC-Sim-v0 at H=3" in printed.out and "±" in printed.out
    for name in ("results.jsonl", "bench_config.json", "summary.json", "summary.csv", "table.txt",
                 "accuracy_vs_tokens.png", "j_curves.png", "regret.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "results.jsonl").read_text().splitlines()) == 3 * 2 * 6
    assert (out / "accuracy_vs_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert {r["agent"] for r in summary["rows"]} == {"oracle", "answer-after:2", "random"}
    assert (out / "summary.csv").read_text().splitlines()[0].startswith("budget,max_episodes")
    assert "oracle" in (out / "table.txt").read_text()
    # A second run without --resume refuses to mix results; with --resume it computes nothing.
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0


def test_cli_bench_bad_input_exits_2_with_a_message(tmp_path, capsys):
    assert main(["bench", "--agents", "oracel", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'oracle'" in capsys.readouterr().err
    assert main(["bench", "--budgets", "0", "--out", str(tmp_path / "x")]) == 2
    assert "must be >= 1" in capsys.readouterr().err
    # An argument only the env can check (an observation field name) fails when the agent is built.
    argv = ["bench", "--env", "TTC-Replay-v0", "--agents", "q-learning:steps=10,state_fields=episodes", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "y")]) == 2
    assert "Unknown observation field 'episodes'. Did you mean 'episodes_used'?" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# The shape of the LLM envs: text actions, prover answers in info, no profile (generic env)


class ToyTextEnv(gym.Env):
    """A stand-in for TTC-Math-v0: the action is the next episode's text; after each episode K=3 forced
    answers are sampled and graded; "ANSWER" commits. Correct answer: "42"."""

    metadata = {"render_modes": []}

    def __init__(self, max_episodes: int = 3):
        self.max_episodes = max_episodes
        self.observation_space = gym.spaces.Text(200, min_length=0)
        self.action_space = gym.spaces.Text(200, min_length=0)

    def _info(self, answers):
        correct = [a == "42" for a in answers]
        return {"J": sum(correct) / len(correct), "progress": 0.0, "outcome": 0.0, "episodes_used": self.t,
                "tokens_used": 10 * self.t, "answered": False, "prover_answers": answers,
                "prover_correct": correct, "problem_id": f"toy-{self.seed}"}

    def reset(self, *, seed=None, options=None):
        self.seed, self.t = seed, 0
        self.rng = np.random.default_rng(seed)
        return "What is 6 x 7?", self._info(["41", "40", "42"])

    def step(self, action):
        if action == "ANSWER":
            info = self._info(["42"] * 3)
            info.update(outcome=float(self.rng.random() < 0.7), answered=True)
            return "", info["outcome"], True, False, info
        self.t += 1
        answers = [str(41 + int(self.rng.random() < 0.3 * self.t)) for _ in range(3)]
        info = self._info(answers)
        done = self.t >= self.max_episodes
        if done:
            info.update(outcome=float(self.rng.random() < info["J"]), answered=True)
        return "more thinking", info["outcome"], done, done, info

class ThinkThenAnswer:
    def __init__(self, k):
        self.k = k

    def act(self, obs, info):
        return "ANSWER" if info["episodes_used"] >= self.k else f"episode {info['episodes_used']}"


def think_then_answer(env, k: int = 1):
    return ThinkThenAnswer(k)


def test_a_text_env_with_prover_answers_gets_maj_at_k_and_its_plot(tmp_path):
    if "ToyText-v0" not in gym.registry:
        gym.register("ToyText-v0", entry_point=ToyTextEnv, disable_env_checker=True)
    result = run(
        tmp_path, "toy", agents=(f"{__name__}:think_then_answer:1", f"{__name__}:think_then_answer:3"),
        budgets=(2, 3), num_problems=6, plots=True, config={"env_id": "ToyText-v0", "rank_by": "maj_accuracy"},
    )
    row = result.summary["rows"][0]
    assert "maj_accuracy" in row["metrics"] and len(row["maj_curve"]["mean"]) in (2, 3)
    assert result.summary["budgets"][0]["j_star"] == 1.0  # no comparator stated: a perfect solver
    assert (tmp_path / "toy" / "maj_at_k.png").stat().st_size > 0
    records = [json.loads(line) for line in (tmp_path / "toy" / "results.jsonl").read_text().splitlines()]
    assert records[0]["extra"]["problem_id"].startswith("toy-") and records[0]["actions"][0].startswith("episode")


def test_resume_accepts_equal_env_kwargs_that_json_cannot_hold(tmp_path):
    from ttc_gym.envs.sim_model import DifficultyLevel

    def levels():  # fresh objects each time, as in a new process
        return (DifficultyLevel("easy", 1, 0.9, 0.05), DifficultyLevel("hard", 3, 0.4, 0.3))

    first = run(tmp_path, "lv", agents=("answer-after:2",), num_problems=3, config={"env_kwargs": {"levels": levels()}})
    again = run(tmp_path, "lv", agents=("answer-after:2",), num_problems=3, resume=True,
                config={"env_kwargs": {"levels": levels()}})
    assert again.computed == 0 and again.summary == first.summary
    with pytest.raises(ValueError, match="env_kwargs"):
        run(tmp_path, "lv", agents=("answer-after:2",), num_problems=3, resume=True,
            config={"env_kwargs": {"levels": levels()[:1]}})
