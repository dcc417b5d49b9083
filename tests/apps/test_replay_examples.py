"""The replay study and its Q-learning diagnosis (examples/studies/) run end to end on a shipped trace set."""

import subprocess
import sys
from pathlib import Path

from ttc_gym.traces import TRACE_DATA

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "studies"


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_replay_study_quick_reports_every_learner_with_verdicts(tmp_path):
    out = tmp_path / "study.md"
    run("replay_study.py", "--quick", "--data", str(TRACE_DATA / "smollm2_procedural.jsonl"), "--split-seeds", "0",
        "--episode-cost", "0.05", "--out", str(out))
    text = out.read_text()
    for learner in ("Q-learning", "Double Q-learning", "Q-learning, aggregated state",
                    "Double Q-learning, aggregated state", "PPO"):
        assert f"| {learner} (20,000 steps" in text or f"| {learner} (4,000 steps" in text, learner
        assert f"- {learner} (" in text, f"no verdict for {learner}"
    assert "episode cost = 0.05" in text and "DP oracle†" in text


def test_q_learning_diagnosis_prints_train_and_test_returns():
    lines = run("replay_q_diagnosis.py", "--steps", "5000", "--rollouts", "2").splitlines()
    assert lines[0].split() == ["policy", "train", "problems", "test", "problems"]
    rows = {line[:38].strip(): [float(x) for x in line[38:].split()] for line in lines[1:]}
    assert list(rows) == ["Q-learning (greedy)", "the same table, switch -> continue", "always continue"]
    assert all(len(values) == 2 for values in rows.values())
