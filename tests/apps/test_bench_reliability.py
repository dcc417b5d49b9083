"""The benchmark under hostile conditions (issue 13): two runs on one folder, a killed run's lock, damaged
results and config files, output paths, factories that are not agent factories, a disk that fills up
mid-run, and grader comparisons that did not complete."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from rich.console import Console

import ttc_gym.bench.runner as runner
from ttc_gym.bench import BenchConfig, prepare, run_bench, serial_executor
from ttc_gym.cli import main

AGENTS = ("answer-after:2", "random")
PROBLEMS = 5
TOTAL = len(AGENTS) * 2 * PROBLEMS


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def run(out: Path, **kwargs) -> runner.BenchResult:
    config = BenchConfig(
        agents=kwargs.pop("agents", AGENTS), budgets=kwargs.pop("budgets", (2, 3)),
        num_problems=kwargs.pop("num_problems", PROBLEMS), out_dir=str(out), **kwargs.pop("config", {}),
    )
    return run_bench(config, progress=False, plots=False, console=quiet(), **kwargs)


def lines(out: Path) -> list[str]:
    return (out / "results.jsonl").read_text().splitlines()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted run: what every interrupted or repaired run must end up equal to."""
    return run(tmp_path_factory.mktemp("full") / "out")


def killed(out: Path, after: int) -> None:
    """A run stopped (as by Ctrl-C) after `after` problems were written."""

    def executor(items, evaluate):
        for k, item in enumerate(items):
            if k == after:
                raise KeyboardInterrupt
            yield evaluate(item)

    with pytest.raises(KeyboardInterrupt):
        run(out, executor=executor)
    assert len(lines(out)) == after


@pytest.fixture
def no_compute(monkeypatch):
    """Fails the test if a problem is evaluated."""

    def forbidden(*args, **kwargs):
        raise AssertionError("compute started before the bad input was reported")

    monkeypatch.setattr(runner.ItemEvaluator, "__call__", forbidden)


# ----------------------------------------------------------------------------------------------------
# Item 5: an empty output path


@pytest.mark.parametrize("path", ["", " ", "\t\n"])
def test_an_empty_output_path_is_rejected(tmp_path, monkeypatch, capsys, path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="output folder.*empty"):
        prepare(BenchConfig(agents=("oracle",), budgets=(2,), out_dir=path))
    assert main(["bench", "--env", "TTC-Sim-v0", "--agents", "oracle", "--budgets", "2", "--out", path,
                 "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written, in particular not bench_out/


def test_a_non_path_output_folder_is_rejected(tmp_path):
    with pytest.raises(TypeError, match="out_dir must be a folder path"):
        prepare(BenchConfig(agents=("oracle",), budgets=(2,), out_dir=3))
