"""The Ray executor of the benchmark runner: same summary as a single-process run with the same seeds,
recovery from a killed worker, a clean failure when workers keep dying, and resume after it without
recomputing or losing finished problems. Runs a local Ray with 2 CPUs (`ray.init(num_cpus=2)`)."""

from __future__ import annotations

import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from ttc_gym.bench import BenchConfig, run_bench, serial_executor
from ttc_gym.bench.results_file import record_key
from ttc_gym.cli import main

# Cheap agents (as in test_bench.py): Q-learning trained in well under a second (identically in every
# worker: it is seeded), fixed strategies, the oracle and the per-problem-seeded random agent.
AGENTS = ("oracle", "q-learning:steps=20000", "answer-after:2", "random")
BUDGETS = (2, 4)
PROBLEMS = 25
TOTAL = len(AGENTS) * len(BUDGETS) * PROBLEMS


def run(out: Path, **kwargs):
    config = BenchConfig(env_id="TTC-Sim-v0", agents=AGENTS, budgets=BUDGETS, num_problems=PROBLEMS, out_dir=str(out))
    return run_bench(config, progress=False, plots=False, console=Console(file=io.StringIO()), **kwargs)


def keys_in(out: Path) -> list[tuple]:
    return [record_key(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()]


def test_missing_ray_names_the_extra(monkeypatch, tmp_path, capsys):
    from ttc_gym.bench.ray_executor import ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like
    with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[ray\]'"):
        ray_executor(num_workers=2)
    assert main(["bench", "--env", "TTC-Sim-v0", "--ray", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "pip install 'ttc-gym[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # failed before anything was made


def test_gpu_workers_only_for_vllm_engines():
    from types import SimpleNamespace

    from ttc_gym.bench.ray_executor import uses_gpu_engine

    assert uses_gpu_engine(SimpleNamespace(env_kwargs={"engine": "vllm:Qwen/Qwen2.5-Math-1.5B"}))
    assert uses_gpu_engine(SimpleNamespace(env_kwargs={"prover_engine": "VLLM:m"}))
    for kwargs in ({}, {"engine": None}, {"engine": "transformers:m"}, {"engine": object()}):
        assert not uses_gpu_engine(SimpleNamespace(env_kwargs=kwargs))
    assert not uses_gpu_engine(lambda item: {})


# Starting a local Ray takes 5-15 s and each run starts fresh worker processes: ~50 s for the tests below.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for this module (the tests below are skipped where Ray is not installed)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def serial_summary(tmp_path_factory):
    return run(tmp_path_factory.mktemp("serial") / "out").summary


def killing(ray, executor, after: int, which: str):
    """Wrap a RayExecutor: once `after` records have arrived, ray.kill one worker ("one") or all ("all")."""

    def run_and_kill(items, evaluate):
        for k, record in enumerate(executor(items, evaluate), start=1):
            if k == after:
                for actor in executor.actors[: 1 if which == "one" else None]:
                    ray.kill(actor)
            yield record

    return run_and_kill


@slow
def test_two_ray_workers_give_the_single_process_summary(local_ray, serial_summary, tmp_path):
    from ttc_gym.bench.ray_executor import ray_executor

    result = run(tmp_path / "ray", executor=ray_executor(num_workers=2))
    assert result.computed == TOTAL
    keys = keys_in(tmp_path / "ray")
    assert len(keys) == len(set(keys)) == TOTAL
    assert result.summary == serial_summary


@slow
def test_a_killed_worker_is_replaced_and_its_items_retried(local_ray, serial_summary, tmp_path):
    from ttc_gym.bench.ray_executor import ray_executor

    executor = ray_executor(num_workers=2)
    result = run(tmp_path / "killed", executor=killing(local_ray, executor, after=30, which="one"))
    assert executor.restarts == 1
    keys = keys_in(tmp_path / "killed")
    assert len(keys) == len(set(keys)) == TOTAL  # nothing lost, nothing twice
    assert result.summary == serial_summary


@slow
def test_when_every_worker_dies_the_run_fails_cleanly_and_resume_finishes_it(local_ray, serial_summary, tmp_path):
    from ttc_gym.bench.ray_executor import WorkersLost, ray_executor

    out = tmp_path / "lost"
    with pytest.raises(WorkersLost, match="--resume"):
        executor = ray_executor(num_workers=2, max_worker_restarts=0)
        run(out, executor=killing(local_ray, executor, after=30, which="all"))
    done = keys_in(out)
    assert 30 <= len(done) < TOTAL and len(done) == len(set(done))  # what finished is saved, once

    evaluated = []

    def counting(items, evaluate):
        evaluated.extend(item.key for item in items)
        yield from ray_executor(num_workers=2)(items, evaluate)

    resumed = run(out, executor=counting, resume=True)
    assert resumed.computed == TOTAL - len(done) == len(evaluated)
    assert not set(done) & set(evaluated)  # finished problems were not recomputed
    keys = keys_in(out)
    assert len(keys) == len(set(keys)) == TOTAL
    assert resumed.summary == serial_summary


@slow
def test_an_item_that_kills_its_worker_is_retried_then_reported(local_ray, tmp_path):
    from ttc_gym.bench.ray_executor import WorkersLost, ray_executor

    target = ("answer-after:2", "H=4", 7)

    class Crashing:  # defined here, so Ray ships it by value to the workers
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, item):
            if item.key == target:
                os._exit(1)  # the worker process dies (as on a segfault or the OOM killer)
            return self.inner(item)

    attempts = Counter()

    def crashing(items, evaluate):
        executor = ray_executor(num_workers=2, max_item_retries=1)
        try:
            yield from executor(items, Crashing(evaluate))
        finally:
            attempts["restarts"] = executor.restarts

    out = tmp_path / "crash"
    with pytest.raises(WorkersLost, match=r"died 2 times while evaluating WorkItem\(agent='answer-after:2'"):
        run(out, executor=crashing)
    assert attempts["restarts"] >= 1  # deaths were replaced and the item retried before the run ended
    done = keys_in(out)
    assert target not in done and len(done) == len(set(done))

    resumed = run(out, executor=serial_executor, resume=True)  # e.g. after fixing what crashed
    assert resumed.computed == TOTAL - len(done)
    assert sorted(keys_in(out)) == sorted(set(keys_in(out))) and len(keys_in(out)) == TOTAL


@slow
def test_an_evaluation_error_is_not_retried(local_ray, tmp_path):
    from ttc_gym.bench.ray_executor import ray_executor

    class Failing:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, item):
            if item.problem == 3:
                raise ValueError(f"bad problem {item.problem}")
            return self.inner(item)

    def failing(items, evaluate):
        yield from ray_executor(num_workers=2)(items, Failing(evaluate))

    with pytest.raises(ValueError, match="bad problem 3"):
        run(tmp_path / "fail", executor=failing)


@slow
def test_cli_bench_ray(local_ray, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["bench", "--env", "TTC-Sim-v0", "--agents", "answer-after:2", "random", "--budgets", "2", "--problems", "6", "--out", str(out),
            "--no-plots", "--no-progress"]
    assert main(argv + ["--ray", "--ray-workers", "2"]) == 0
    assert len(keys_in(out)) == 12
    assert main(argv + ["--ray-workers", "0"]) == 2
    assert "num_workers must be >= 1" in capsys.readouterr().err
    # A factory that refuses its arguments on a worker: the one-line message, not Ray's remote traceback.
    bad = ["bench", "--env", "TTC-Replay-v0", "--agents", "q-learning:steps=10,state_fields=episodes", "--budgets", "2",
           "--problems", "2", "--out", str(tmp_path / "bad"), "--no-plots", "--no-progress", "--ray", "--ray-workers", "1"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "error: agent 'q-learning:steps=10,state_fields=episodes' could not be built on TTC-Replay-v0: Unknown " \
           "observation field 'episodes'. Did you mean 'episodes_used'?" in err and "ray::" not in err
