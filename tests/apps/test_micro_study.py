"""The pre-registered micro-reasoner study (examples/studies/micro_study.py): its report turns per-seed
results into the planned claims' verdicts (checked on constructed results whose answer is known), the
pilot report gives the minimum detectable effects, and --quick runs the whole pipeline end to end."""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"


@pytest.fixture(scope="module")
def study_modules():
    sys.path.insert(0, str(STUDIES))
    try:
        import micro_study
        import micro_study_report
        yield micro_study, micro_study_report
    finally:
        sys.path.remove(str(STUDIES))


def _run(method, seed, acc, tokens=50.0, regret=0.5, problems=10):
    per_problem = [1.0 if i < round(acc * problems) else 0.0 for i in range(problems)]
    history = [{"outcome": acc, "J_final": acc, "all_failed_groups": 1.0 - acc}] * 4
    return {"method": method, "seed": seed, "train_s": 1.0, "eval_s": 1.0, "history": history,
            "acc@H": acc, "acc@2H": acc + 0.01, "regret@H": regret, "regret@2H": regret, "tokens@H": tokens,
            "tokens@2H": tokens, "episodes@H": 2.0, "J@H": [acc], "J@2H": [acc],
            "by_level@H": {"2": acc, "3": acc / 2}, "by_level@2H": {"2": acc, "3": acc / 2},
            "per_problem@H": per_problem, "per_problem@2H": per_problem}


def _blob(micro_study, mode, runs):
    return {"mode": mode, "study": asdict(micro_study.Study()), "plan_commit": "abc1234", "runs": runs,
            "wall_s": 60.0, "torch": "x"}


def _claim_row(text, name):
    row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return [c.strip() for c in row.split("|")[1:-1]]


def test_report_verdicts_follow_the_paired_tests(study_modules, tmp_path):
    micro_study, report = study_modules
    rng = np.random.default_rng(0)
    runs = [_run("base", None, 0.2)]
    for seed in range(12):
        grpo = 0.3 + rng.normal(0, 0.01)
        runs.append(_run("GRPO", seed, grpo, tokens=50.0))
        # MRT: clearly more accurate, clearly MORE tokens (P4 claims fewer: contradicted), regret equal up to noise.
        runs.append(_run("MRT", seed, grpo + 0.1 + rng.normal(0, 0.01), tokens=60.0 + rng.normal(0, 0.5),
                         regret=0.5 + rng.normal(0, 0.05)))
    path = tmp_path / "r.md"
    report.write_report(path, _blob(micro_study, "study", runs))
    text = path.read_text()
    assert _claim_row(text, "P1")[8] == "**supported**"
    assert "contradicted" in _claim_row(text, "P4")[8]
    assert _claim_row(text, "P2")[8] == "not detected"
    for name in ("P5", "P6", "P7", "P8"):  # methods that were not run are said so, not tested
        assert _claim_row(text, name)[8] == "not run"
    assert "abc1234" in text and "base-failed" in text
    # The held-out J curves: the mean over seeds of each method's J after each episode.
    j_rows = text.split("## Held-out J after each episode at H ")[1].split("## ")[0]
    mrt_mean = np.mean([r["J@H"][0] for r in runs if r["method"] == "MRT"])
    assert _claim_row(j_rows, "MRT")[1] == f"{mrt_mean:.3f}" and _claim_row(j_rows, "base")[1] == "0.200"


def test_with_few_seeds_nothing_is_declared(study_modules, tmp_path):
    micro_study, report = study_modules
    runs = [_run("GRPO", s, 0.3) for s in range(3)] + [_run("MRT", s, 0.5) for s in range(3)]
    path = tmp_path / "r.md"
    report.write_report(path, _blob(micro_study, "study", runs))
    # 3 seeds: the smallest exact two-sided permutation p is 2/8 = 0.25, whatever the effect.
    assert _claim_row(path.read_text(), "P1")[8] == "not detected"


def test_pilot_report_gives_the_detectable_effects(study_modules, tmp_path):
    micro_study, report = study_modules
    runs = [_run("GRPO", s, 0.3) for s in range(3)] + [_run("MRT", s, 0.3 + d) for s, d in enumerate((0.0, 0.02, 0.04))]
    path = tmp_path / "p.md"
    report.write_report(path, _blob(micro_study, "pilot", runs))
    text = path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| acc@H |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2] == "+0.020" and cells[3] == "0.020"
    from ttc_gym.study_stats import minimum_detectable_effect

    assert float(cells[4]) == pytest.approx(minimum_detectable_effect(0.02, 12, tests=len(micro_study.CLAIMS)), abs=1e-3)


@pytest.mark.slow  # ~2-4 min on a loaded 2-core machine
def test_quick_study_runs_end_to_end(tmp_path, study_modules):
    micro_study, _ = study_modules
    out, saved = tmp_path / "study.md", tmp_path / "study.json"
    done = subprocess.run([sys.executable, str(STUDIES / "micro_study.py"), "--quick", "--out", str(out),
                           "--save-results", str(saved), "--plan-commit", "abc1234"],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    blob = json.loads(saved.read_text())
    labels = {label for label, _, _ in micro_study.METHODS}
    assert {r["method"] for r in blob["runs"]} == labels | {"base"}
    assert all(len(r["history"]) == 2 for r in blob["runs"] if r["method"] != "base")
    text = out.read_text()
    for claim in micro_study.CLAIMS:
        assert _claim_row(text, claim.name)[4] == "2"
    again = tmp_path / "again.md"
    redo = subprocess.run([sys.executable, str(STUDIES / "micro_study.py"), "--from-results", str(saved),
                           "--out", str(again)], capture_output=True, text=True, timeout=300)
    assert redo.returncode == 0, redo.stderr[-3000:]
    strip = lambda t: [line for line in t.splitlines() if not line.startswith("Command:")]  # noqa: E731
    assert strip(again.read_text()) == strip(text)
