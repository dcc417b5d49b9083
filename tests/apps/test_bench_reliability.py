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
from ttc_gym.bench import agent_registry, evaluator, folder_lock, results_file
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
        num_problems=kwargs.pop("num_problems", PROBLEMS), out_dir=str(out),
        **{"env_id": "TTC-Sim-v0", **kwargs.pop("config", {})},
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

    monkeypatch.setattr(evaluator.ItemEvaluator, "__call__", forbidden)


# ----------------------------------------------------------------------------------------------------
# Item 2: one run per output folder, and resume only records of the same configuration

HOLDER = textwrap.dedent(
    """
    import pathlib, sys, time
    from ttc_gym.bench import BenchConfig, run_bench

    out, started, go = sys.argv[1:4]

    def waiting(items, evaluate):
        for k, item in enumerate(items):
            if k == 3:  # three problems written: say so, then hold the folder until told to go on
                pathlib.Path(started).write_text("started")
                while not pathlib.Path(go).exists():
                    time.sleep(0.02)
            yield evaluate(item)

    config = BenchConfig(env_id="TTC-Sim-v0", agents=%r, budgets=(2, 3), num_problems=%d, out_dir=out)
    run_bench(config, executor=waiting, progress=False, plots=False)
    """
    % (AGENTS, PROBLEMS)
)


def start_holder(tmp_path: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """A second process running a bench on `out`, paused after its third problem. Returns it and the file
    that lets it go on."""
    script, started, go = tmp_path / "holder.py", tmp_path / "started", tmp_path / "go"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(started), str(go)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # generous: a loaded CI machine starts interpreters slowly
    while time.monotonic() < deadline:
        if started.exists() or proc.poll() is not None:
            break
        time.sleep(0.02)
    if not started.exists():
        proc.kill()
        raise AssertionError(f"the holder did not start: {proc.communicate()}")
    return proc, go


def test_a_second_bench_on_the_same_folder_refuses_at_once_naming_the_holder(tmp_path, full, capsys):
    out = tmp_path / "out"
    holder, go = start_holder(tmp_path, out)
    try:
        argv = ["bench", "--env", "TTC-Sim-v0", "--agents", *AGENTS, "--budgets", "2", "3", "--problems",
                str(PROBLEMS), "--out", str(out), "--no-progress", "--no-plots"]
        for extra in ([], ["--resume"], ["--overwrite"], ["--env-kwarg", "heterogeneity=0.5"]):
            assert main(argv + extra) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert f"pid {holder.pid}" in err and "in use by another ttc-gym bench" in err, err
        with pytest.raises(folder_lock.OutputFolderBusy, match=f"pid {holder.pid}"):
            run(out, resume=True)
        assert len(lines(out)) == 3  # nothing written by the refused runs
    finally:
        go.write_text("go")
        stdout, stderr = holder.communicate(timeout=120)
    assert holder.returncode == 0, stderr
    # The holder finished alone: its summary is the uninterrupted one, and the lock is free again.
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(full.summary))
    again = run(out, resume=True)
    assert again.computed == 0 and again.summary == full.summary


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_notice(tmp_path, full, capsys):
    out = tmp_path / "out"
    holder, _ = start_holder(tmp_path, out)
    holder.send_signal(signal.SIGKILL)  # no chance to release anything
    holder.communicate(timeout=60)
    argv = ["bench", "--env", "TTC-Sim-v0", "--agents", *AGENTS, "--budgets", "2", "3", "--problems",
            str(PROBLEMS), "--out", str(out), "--no-progress", "--no-plots", "--resume"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"pid {holder.pid}" in err and "ended without releasing" in err, err
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(full.summary))
    # A lock released cleanly leaves no notice behind.
    assert main(argv) == 0
    assert "without releasing" not in capsys.readouterr().err


def test_resume_refuses_records_made_with_another_env_configuration(tmp_path):
    """What two runs on one folder (before the lock) left behind: records of another env config under
    this run's bench_config.json."""
    out = tmp_path / "mixed"
    killed(out, 4)
    other = tmp_path / "other"
    run(other, config={"env_kwargs": {"heterogeneity": 0.5}})
    foreign = [json.loads(line) for line in lines(other)[5:8]]
    with open(out / "results.jsonl", "a") as f:
        for record in foreign:
            f.write(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"cannot resume.*3 records.*env_kwargs.*heterogeneity.*0\.5") as info:
        run(out, resume=True)
    assert "overwrite" not in str(info.value)


# ----------------------------------------------------------------------------------------------------
# Item 5: an empty output path


@pytest.mark.parametrize("path", ["", " ", "\t\n"])
def test_an_empty_output_path_is_rejected(tmp_path, monkeypatch, capsys, path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="output folder.*empty"):
        prepare(BenchConfig(env_id="TTC-Sim-v0", agents=("oracle",), budgets=(2,), out_dir=path))
    assert main(["bench", "--env", "TTC-Sim-v0", "--agents", "oracle", "--budgets", "2", "--out", path,
                 "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written, in particular not bench_out/


def test_a_non_path_output_folder_is_rejected(tmp_path):
    with pytest.raises(TypeError, match="out_dir must be a folder path"):
        prepare(BenchConfig(env_id="TTC-Sim-v0", agents=("oracle",), budgets=(2,), out_dir=3))


# ----------------------------------------------------------------------------------------------------
# Item 8: damaged results and config files


def _a_record(full_out: Path) -> dict:
    return json.loads(lines(full_out)[0])


DAMAGED_LINES = [
    "{}", "null", "[]", "1", '"text"', "true", "", "   ", "{not json", '{"agent": "random"}',
    '{"agent": 1, "budget": "H=2", "seed": 0}',
]


def _damaged_variants(record: dict) -> list[str]:
    """The class of damaged-but-parseable records: each required field missing or of the wrong type."""
    out = list(DAMAGED_LINES)
    for key in ("agent", "budget", "seed", "total_reward", "outcome", "episodes_used", "tokens_used", "j_curve",
                "token_curve"):
        out.append(json.dumps({k: v for k, v in record.items() if k != key}))
        for bad in (None, "x", [1], {"a": 1}, True):
            if (key in ("j_curve", "token_curve") and isinstance(bad, list)) or (
                key in ("agent", "budget") and isinstance(bad, str)  # a string names another agent or budget
            ):
                continue
            out.append(json.dumps({**record, key: bad}))
    out.append(json.dumps({**record, "seed": -1}))
    out.append(json.dumps({**record, "j_curve": []}))
    out.append(json.dumps({**record, "j_curve": ["a"] * len(record["j_curve"])}))
    out.append(json.dumps({**record, "token_curve": record["token_curve"] + [1]}))
    return out


def test_damaged_records_are_skipped_counted_and_recomputed(tmp_path, full):
    """Fuzz the class: each damaged line, last or in the middle, is skipped with a one-line notice and its
    problem computed again; the summary equals an uninterrupted run's."""
    base = tmp_path / "base"
    killed(base, 6)
    good = lines(base)
    variants = _damaged_variants(json.loads(good[0]))
    assert len(variants) > 40
    for k, bad in enumerate(variants):
        out = tmp_path / f"v{k}"
        out.mkdir()
        (out / "bench_config.json").write_bytes((base / "bench_config.json").read_bytes())
        middle = k % 2 == 1
        body = good[:3] + [bad] + good[4:] if middle else good + [bad]
        (out / "results.jsonl").write_text("\n".join(body) + "\n")
        notices = []
        result = run(out, resume=True, notify=notices.append)
        expected_recomputed = TOTAL - (5 if middle else 6)
        assert result.computed == expected_recomputed, (bad, result.computed)
        assert result.summary == full.summary, bad
        assert len(notices) == 1 and "skipped 1 damaged record" in notices[0], (bad, notices)
        assert "\n" not in notices[0]
        if middle:  # the original is kept; the file now holds complete records only
            backups = list(out.glob("results.jsonl.bak-*"))
            assert len(backups) == 1 and bad in backups[0].read_text().splitlines()
        assert all(results_file.record_problem(json.loads(line)) is None for line in lines(out))


def test_non_utf8_bytes_in_results_are_a_damaged_line(tmp_path, full):
    out = tmp_path / "bytes"
    killed(out, 6)
    with open(out / "results.jsonl", "ab") as f:
        f.write(b'{"agent": "\xff\xfe"}\n')
    notices = []
    assert run(out, resume=True, notify=notices.append).summary == full.summary
    assert "skipped 1 damaged record" in notices[0]


@pytest.mark.parametrize("content", ["", "   ", "{", "[]", "{}", '{"config": 3}', "null", '{"config": []}'])
def test_a_damaged_config_file_is_explained_and_resume_goes_on_when_the_records_say_who_made_them(
    tmp_path, full, content
):
    out = tmp_path / "cfg"
    killed(out, 6)
    (out / "bench_config.json").write_text(content)
    notices = []
    result = run(out, resume=True, notify=notices.append)
    assert result.computed == TOTAL - 6 and result.summary == full.summary
    assert any("bench_config.json" in n and "this run's" in n for n in notices), notices
    assert json.loads((out / "bench_config.json").read_text())["config"]["agents"] == list(AGENTS)


@pytest.mark.parametrize("content", [None, "", "[]", '{"config": 3}'])
def test_a_damaged_config_with_records_that_do_not_say_who_made_them_refuses_without_advising_deletion(
    tmp_path, content
):
    out = tmp_path / "legacy"
    killed(out, 6)
    legacy = [json.loads(line) for line in lines(out)]
    for record in legacy:  # records written before they named their env
        record.pop("env_id"), record.pop("env_kwargs")
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in legacy))
    if content is None:
        (out / "bench_config.json").unlink()
    else:
        (out / "bench_config.json").write_text(content)
    with pytest.raises(ValueError, match="cannot resume.*bench_config.json") as info:
        run(out, resume=True)
    message = str(info.value)
    assert "overwrite" not in message and "JSONDecodeError" not in message and "Expecting value" not in message
    assert ("missing" if content is None else "damaged") in message
    assert len(lines(out)) == 6  # untouched


def test_overwrite_keeps_a_backup_of_the_results_and_config(tmp_path, capsys):
    out = tmp_path / "ow"
    killed(out, 6)
    before, config_before = (out / "results.jsonl").read_text(), (out / "bench_config.json").read_text()
    with pytest.raises(FileExistsError, match="backup"):  # the hint says --overwrite keeps a backup
        run(out)
    notices = []
    result = run(out, overwrite=True, notify=notices.append)
    assert result.computed == TOTAL
    (backup,) = out.glob("results.jsonl.bak-*")
    (config_backup,) = out.glob("bench_config.json.bak-*")
    assert backup.read_text() == before and config_backup.read_text() == config_before
    assert any(backup.name in n for n in notices)
    # A second overwrite in the same second keeps both backups.
    run(out, overwrite=True, notify=notices.append)
    assert len(list(out.glob("results.jsonl.bak-*"))) == 2


# ----------------------------------------------------------------------------------------------------
# Item 9: import-path factories that are not agent factories


class NoAct:
    pass


class NoActTakesEnv:
    def __init__(self, env):
        self.env = env


class ActNotCallable:
    act = 3


class ResetNotCallable:
    reset = "no"

    def act(self, obs, info):
        return 0


def returns_no_act(env):
    return NoAct()


def returns_act_not_callable(env):
    return ActNotCallable()


def returns_bad_reset(env):
    return ResetNotCallable()


@pytest.mark.parametrize(
    "spec",
    ["os:system", "builtins:print", "builtins:len", "builtins:dict", "math:sqrt", "json:dumps", "time:sleep",
     "collections:OrderedDict", f"{__name__}:returns_no_act", f"{__name__}:returns_act_not_callable",
     f"{__name__}:returns_bad_reset", f"{__name__}:NoAct", f"{__name__}:NoActTakesEnv"],
)
def test_a_factory_that_does_not_make_an_agent_fails_before_compute(tmp_path, no_compute, capsys, spec):
    with pytest.raises((TypeError, ValueError), match=r"act\(obs, info\)") as info:
        prepare(BenchConfig(env_id="TTC-Sim-v0", agents=("oracle", spec), budgets=(2,), num_problems=2, out_dir=str(tmp_path / "o")))
    assert spec in str(info.value) and "reset(seed=None)" in str(info.value)
    assert main(["bench", "--env", "TTC-Sim-v0", "--agents", spec, "--budgets", "2", "--problems", "2", "--out",
                 str(tmp_path / "cli"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "act(obs, info)" in err, err
    assert not (tmp_path / "cli" / "results.jsonl").exists()


def annotated_int(env) -> int:
    return 3


def annotated_none(env) -> None:
    return None


@pytest.fixture
def costly_sim(monkeypatch):
    """TTC-Sim-v0 treated like an env that is costly to make (a model to load): no factory is called
    while validating."""
    import dataclasses

    from ttc_gym.bench import profiles

    monkeypatch.setitem(profiles.PROFILES, "TTC-Sim-v0",
                        dataclasses.replace(profiles.PROFILES["TTC-Sim-v0"], cheap_make=False))


@pytest.mark.parametrize("spec", [f"{__name__}:annotated_int", f"{__name__}:annotated_none", f"{__name__}:NoActTakesEnv"])
def test_where_the_env_is_costly_a_return_annotation_that_is_no_agent_fails_before_compute(
    tmp_path, costly_sim, no_compute, spec
):
    with pytest.raises(TypeError, match=r"return.*has no act\(obs, info\)"):
        prepare(BenchConfig(env_id="TTC-Sim-v0", agents=(spec,), budgets=(2,), num_problems=2, out_dir=str(tmp_path / "o")))


def test_where_the_env_is_costly_an_unannotated_non_factory_fails_when_built_with_one_line(
    tmp_path, costly_sim, capsys
):
    spec = f"{__name__}:returns_no_act"
    prepare(BenchConfig(env_id="TTC-Sim-v0", agents=(spec,), budgets=(2,), num_problems=2, out_dir=str(tmp_path / "o")))
    with pytest.raises(agent_registry.NotAnAgent, match=r"NoAct.*act\(obs, info\)"):
        run(tmp_path / "lib", agents=(spec,))
    assert main(["bench", "--env", "TTC-Sim-v0", "--agents", spec, "--budgets", "2", "--problems", "2", "--out",
                 str(tmp_path / "cli"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "act(obs, info)" in err.splitlines()[-1]


def test_a_factory_checked_while_validating_still_runs(tmp_path):
    result = run(tmp_path / "ok", agents=("ttc_gym.agents.oracle:OracleAgent.from_env", "answer-after:1"))
    assert result.computed == 2 * 2 * PROBLEMS


# ----------------------------------------------------------------------------------------------------
# Item 10: the disk fills up mid-run


class FillingDisk:
    """The results file on a disk that fills up: after `room` lines, a write puts 7 bytes down and fails
    with ENOSPC (a short write, then the error), as a real full disk does."""

    def __init__(self, raw, room: int):
        self.raw, self.room = raw, room

    def write(self, data):
        if self.room <= 0:
            self.raw.write(bytes(data)[:7])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= bytes(data).endswith(b"\n")
        return self.raw.write(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def failing_after(monkeypatch, n: int) -> None:
    """The results writer's file fails (a full disk) once `n` lines were written by this run."""
    real_init = results_file.ResultsWriter.__init__

    def init(self, path):
        real_init(self, path)
        self._file = FillingDisk(self._file, n)

    monkeypatch.setattr(results_file.ResultsWriter, "__init__", init)


def test_a_full_disk_mid_run_says_what_was_saved_and_resume_finishes_the_run(tmp_path, full, monkeypatch):
    out = tmp_path / "full-disk"
    failing_after(monkeypatch, 7)
    with pytest.raises(OSError, match=r"No space left on device.*7 of 20 problems are saved.*resume") as info:
        run(out)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert len(lines(out)) == 7  # the half line was cut off again
    resumed = run(out, resume=True)
    assert resumed.computed == TOTAL - 7 and resumed.summary == full.summary


def test_cli_disk_full_is_one_line_exit_1_and_resume_matches(tmp_path, full, monkeypatch, capsys):
    out = tmp_path / "cli"
    argv = ["bench", "--env", "TTC-Sim-v0", "--agents", *AGENTS, "--budgets", "2", "3", "--problems",
            str(PROBLEMS), "--out", str(out), "--no-progress", "--no-plots"]
    failing_after(monkeypatch, 12)
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "12 of 20 problems are saved" in last and "--resume" in last, err
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(full.summary))


def test_an_unwritable_summary_is_one_line_and_resume_writes_it(tmp_path, full, monkeypatch, capsys):
    out = tmp_path / "summary"
    argv = ["bench", "--env", "TTC-Sim-v0", "--agents", *AGENTS, "--budgets", "2", "3", "--problems",
            str(PROBLEMS), "--out", str(out), "--no-progress", "--no-plots"]

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "summary.json"))

    import ttc_gym.bench.report as report

    monkeypatch.setattr(report, "write_summary", no_space)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "all 20 problems are saved" in err.splitlines()[-1] and "--resume" in err
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(full.summary))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_results_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "ro"
    killed(out, 6)
    (out / "results.jsonl").chmod(0o444)
    argv = ["bench", "--env", "TTC-Sim-v0", "--agents", *AGENTS, "--budgets", "2", "3", "--problems",
            str(PROBLEMS), "--out", str(out), "--no-progress", "--no-plots", "--resume"]
    assert main(argv) in (1, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "results.jsonl" in err


# ----------------------------------------------------------------------------------------------------
# Grader comparisons that did not complete ("unknown"), counted per rollout and reported


class GradingToyEnv(gym.Env):
    """A stand-in for the math envs' grader report: each step's info carries `grading_incomplete`, the
    number of that step's comparisons that did not complete (drawn from the problem's seed), unless
    `report=False` (an env without a grader)."""

    metadata = {"render_modes": []}

    def __init__(self, max_episodes: int = 3, report: bool = True, unknowns: int = 2):
        self.max_episodes, self.report, self.unknowns = max_episodes, report, unknowns
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _info(self, graded: bool = True):
        info = {"J": self.t / self.max_episodes, "outcome": 0.0, "episodes_used": self.t, "tokens_used": 10 * self.t}
        if self.report:
            info["grading_incomplete"] = int(self.rng.integers(0, self.unknowns + 1)) if graded else 0
        return info

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.rng = 0, np.random.default_rng(seed)
        return np.zeros(1, np.float32), self._info(graded=False)

    def step(self, action):
        self.t += 1
        info = self._info()
        done = bool(action == 1) or self.t >= self.max_episodes
        return np.zeros(1, np.float32), 0.0, done, False, info


class Always:
    def __init__(self, action):
        self.action = action

    def act(self, obs, info):
        return self.action


def keep_going(env):
    return Always(0)


def register_toy():
    if "GradingToy-v0" not in gym.registry:
        gym.register("GradingToy-v0", entry_point=GradingToyEnv, disable_env_checker=True)


def test_incomplete_gradings_are_summed_per_rollout_and_reported(tmp_path, capsys):
    register_toy()
    out = tmp_path / "unknown"
    agent = f"{__name__}:keep_going"
    result = run(out, agents=(agent,), budgets=(3,), num_problems=4, config={"env_id": "GradingToy-v0"})
    records = [json.loads(line) for line in lines(out)]
    expected = []
    for r in records:  # what the env drew for each of the rollout's 3 steps
        rng = np.random.default_rng(r["seed"])
        expected.append(sum(int(rng.integers(0, 3)) for _ in range(3)))
        assert r["grading_incomplete"] == expected[-1]
    total = sum(expected)
    assert total > 0
    assert result.summary["grading_incomplete"] == total
    assert result.summary["rows"][0]["grading_incomplete"] == total
    header, row = (out / "summary.csv").read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("grading_incomplete")] == str(total)
    table = (out / "table.txt").read_text()
    assert f"{total} grader comparisons" in table and "unknown" in table


def test_no_unknown_line_when_every_grading_completed_or_the_env_has_no_grader(tmp_path):
    register_toy()
    agent = f"{__name__}:keep_going"
    for name, kwargs in (("zero", {"unknowns": 0}), ("absent", {"report": False})):
        result = run(tmp_path / name, agents=(agent,), budgets=(3,), num_problems=3,
                     config={"env_id": "GradingToy-v0", "env_kwargs": kwargs})
        assert result.summary["grading_incomplete"] == 0
        assert all(json.loads(line)["grading_incomplete"] == 0 for line in lines(tmp_path / name))
        assert "grader comparisons" not in (tmp_path / name / "table.txt").read_text()
    # The sim has no grader either: a count of 0 in every record, nothing under the table.
    result = run(tmp_path / "sim", num_problems=2)
    assert result.summary["grading_incomplete"] == 0


def test_a_bad_grading_incomplete_value_is_a_clear_error(tmp_path):
    register_toy()

    class Bad(GradingToyEnv):
        def step(self, action):
            obs, r, term, trunc, info = super().step(action)
            info["grading_incomplete"] = "two"
            return obs, r, term, trunc, info

    if "GradingToyBad-v0" not in gym.registry:
        gym.register("GradingToyBad-v0", entry_point=Bad, disable_env_checker=True)
    with pytest.raises(ValueError, match=r"grading_incomplete.*'two'.*non-negative integer"):
        run(tmp_path / "bad", agents=(f"{__name__}:keep_going",), budgets=(3,), num_problems=1,
            config={"env_id": "GradingToyBad-v0"})
