"""The pre-registered simulator study (examples/studies/sim_study.py) runs end to end with --quick and
its report carries every pre-registered claim with a test, and every method in every setting; the
report can be rewritten from the saved results alone."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"


@pytest.mark.slow  # ~2-3 min on a loaded 2-core machine
def test_quick_study_reports_every_claim_and_method(tmp_path):
    out, saved = tmp_path / "study.md", tmp_path / "study.json"
    done = subprocess.run([sys.executable, str(STUDIES / "sim_study.py"), "--quick", "--out", str(out),
                           "--save-results", str(saved), "--plan-commit", "abc1234"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    sys.path.insert(0, str(STUDIES))
    try:
        from sim_study import METHODS, SETTINGS
        from sim_study_report import CLAIMS
    finally:
        sys.path.remove(str(STUDIES))
    for claim in CLAIMS:
        row = next(line for line in text.splitlines() if line.startswith(f"| {claim.key}: "))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[3] == "2" and (cells[8] in ("not detected", "**supported**") or "contradicted" in cells[8]), row
    for setting in SETTINGS:
        assert f"### setting `{setting}`" in text
        for label, _, _ in METHODS:
            assert f"| {label} | 2 |" in text, (setting, label)
    assert "**abc1234**" in text and "## (b)" in text
    blob = json.loads(saved.read_text())
    assert {r["part"] for r in blob["results"]} == {"a", "b"}
    again = tmp_path / "again.md"
    redone = subprocess.run([sys.executable, str(STUDIES / "sim_study.py"), "--from-results", str(saved), "--out", str(again)],
                            capture_output=True, text=True, timeout=300)
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert again.read_text().split("## The pre-registered claims")[1] == text.split("## The pre-registered claims")[1]
