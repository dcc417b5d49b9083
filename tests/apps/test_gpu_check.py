"""`examples/benchmarks/gpu_check.py`: its --dry-run (the same code as on a GPU, tiny shapes on the CPU) writes
the JSON and markdown it promises, and its offline tokenizer gives every id of a real vocabulary."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "benchmarks" / "gpu_check.py"


def load_script(monkeypatch):
    """The script as a module (it puts examples/benchmarks/ on sys.path for bench_engine: undone after the test)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)
    spec.loader.exec_module(module)
    return module


def run_dry(out: Path, *extra: str) -> dict:
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), *extra],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text())


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_the_dry_run_measures_everything_and_writes_json_and_markdown(tmp_path):
    report = run_dry(tmp_path)
    assert report["dry_run"] is True and report["device"] == "cpu" and report["skipped"] == []
    assert positive(report["roofline"]["matmul_flops"]) and positive(report["roofline"]["bandwidth_bytes_per_s"])
    shapes = set(report["shapes"])

    gen = report["generation"]
    assert {(r["shape"], r["batch"]) for r in gen} == {(s, b) for s in ("tiny-a", "tiny-b") for b in (1, 8, 64)}
    for r in gen:
        assert r["shape"] in shapes and positive(r["params"])
        assert 0 < r["generated_tokens"] <= r["batch"] * r["new_tokens"]
        assert positive(r["gen_tokens_per_s"]) and positive(r["fraction_of_roofline"])
        assert r["decode_steps"] <= r["new_tokens"]

    prover = report["prover"]
    assert {(r["envs"], r["path"]) for r in prover} == {(n, p) for n in (2, 8) for p in ("naive", "optimized")}
    for r in prover:
        assert r["k"] == 8 and r["j_estimates"] >= 1
        assert positive(r["j_estimates_per_s"]) and positive(r["fraction_of_roofline"]) and positive(r["speedup"])
    optimized = [r for r in prover if r["path"] == "optimized"]
    assert [r["j_estimates"] for r in optimized] == [2 * 1, 8 * 1]  # every env, once per episode (1 in a dry run)

    trainer = report["trainer"]
    assert trainer["shape"] in shapes and trainer["rollouts"] == 8
    assert positive(trainer["iteration_wall_s"]) and positive(trainer["training_tokens"])
    assert positive(trainer["fraction_of_roofline"])

    table = (tmp_path / "gpu_check.md").read_text()
    assert "DRY RUN" in table and "| measurement |" in table
    assert table.count("| generation |") == 6 and table.count("| prover ") == 4 and "| trainer iteration |" in table


def test_a_spent_time_budget_skips_every_measurement_and_says_so(tmp_path):
    report = run_dry(tmp_path, "--budget-s", "0")
    assert report["generation"] == [] and report["prover"] == [] and report["trainer"] is None
    assert report["skipped"] == ["generation tiny-a", "generation tiny-b", "prover tiny-b", "trainer tiny-a"]
    assert "skipped: time budget" in (tmp_path / "gpu_check.md").read_text()


def test_the_offline_tokenizer_has_the_exact_vocabulary_and_round_trips_ascii(monkeypatch):
    gpu_check = load_script(monkeypatch)
    tokenizer = gpu_check.build_tokenizer(3000)
    assert len(tokenizer) == 3000
    text = "<|im_start|>user\nWhat is 2 + 3? Put it in \\boxed{5}.<|im_end|>\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text and len(ids) < len(text)  # merges: fewer tokens than characters
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == tokenizer.eos_token_id
    specials = len(gpu_check.SPECIALS)
    assert all(tokenizer.decode([i]) for i in range(specials, 3000))  # every id is text
    assert tokenizer.decode(ids[:1]) == "<|im_start|>"
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        gpu_check.build_tokenizer(10)
