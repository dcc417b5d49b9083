"""Bad input gets a clear one-line error, never garbage, a hang or a deep traceback (issue 33 items 6,
8, 9, 10, 13)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.engines.base import SamplingConfig

# -- item 6: temperatures that underflow -------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-6])
def test_temperatures_that_overflow_the_logits_are_refused(temperature):
    with pytest.raises(ValueError, match=r"temperature must be 0 \(greedy\) or at least 1e-05.*Did you mean 0"):
        SamplingConfig(temperature=temperature)
    with pytest.raises(ValueError, match="prover_temperature must be 0"):
        gym.make("TTC-Math-v0", engine="micro", prover_temperature=temperature)
    with pytest.raises(ValueError, match="temperature must be 0"):
        gym.make("TTC-MathMeta-v0", engine="micro", temperature=temperature)


def test_greedy_and_small_temperatures_are_accepted():
    assert SamplingConfig(temperature=0.0).greedy
    assert SamplingConfig(temperature=1e-5).temperature == 1e-5


# -- item 9: files that are not regular files; item 10: JSON nested too deeply, bytes not UTF-8 -----


@pytest.fixture
def odd_files(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.jsonl")
    for suffix in (".jsonl", ".json", ".csv"):
        (tmp_path / f"zero{suffix}").symlink_to("/dev/zero")
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "latin1.jsonl").write_bytes(b'{"problem": "caf\xe9", "completion": "x"}\n')
    return tmp_path


@pytest.mark.timeout(60)  # a FIFO used to block the reader forever
@pytest.mark.parametrize("name, kind", [("fifo.jsonl", "a FIFO"), ("zero.jsonl", "a character device"),
                                        ("zero.json", "a character device"), ("zero.csv", "a character device")])
def test_a_problem_file_that_is_no_regular_file_is_refused(odd_files, name, kind):
    from ttc_gym.problems import load_problems

    with pytest.raises(ValueError, match=f"expected a problem file \\(a regular file\\), got {kind}"):
        load_problems(odd_files / name)


@pytest.mark.timeout(60)
def test_trace_readers_refuse_files_that_are_no_regular_files(odd_files):
    from pathlib import Path

    from ttc_gym.envs.replay_data import load_replay_data
    from ttc_gym.jsonl_log import read_jsonl_log
    from ttc_gym.traces.loaders import load_raw_traces

    for name in ("fifo.jsonl", "zero.jsonl"):
        with pytest.raises(ValueError, match="a regular file"):
            load_raw_traces(odd_files / name)
        with pytest.raises(ValueError, match="a regular file"):
            load_replay_data(odd_files / name)
        with pytest.raises(ValueError, match="a regular file"):
            read_jsonl_log(Path(odd_files / name), lambda record: None)


def test_json_nested_too_deeply_is_bad_input_in_every_loader(odd_files):
    from ttc_gym.envs.replay_data import load_replay_data
    from ttc_gym.jsonl_log import read_jsonl_log
    from ttc_gym.problems import load_problems
    from ttc_gym.traces.loaders import load_raw_traces

    for name in ("deep.jsonl", "deep.json"):
        with pytest.raises(ValueError, match="JSON nested too deeply"):
            load_problems(odd_files / name)
    with pytest.raises(ValueError, match=r"deep.jsonl:1: JSON nested too deeply"):
        load_raw_traces(odd_files / "deep.jsonl")
    with pytest.raises(ValueError, match=r"deep.jsonl:1: JSON nested too deeply"):
        load_replay_data(odd_files / "deep.jsonl")
    assert read_jsonl_log(odd_files / "deep.jsonl", lambda record: None).damaged == [(1, "JSON nested too deeply")]


def test_raw_traces_that_are_not_utf8_name_the_line(odd_files):
    from ttc_gym.traces.loaders import load_raw_traces

    with pytest.raises(ValueError, match=r"latin1.jsonl:1: not UTF-8 text .*re-save the file as UTF-8"):
        load_raw_traces(odd_files / "latin1.jsonl")


# -- item 10: numbers beyond any budget, an unknown engine, Ctrl+C during train -----------------------


@pytest.mark.parametrize("env_id", ["TTC-Math-v0", "TTC-MathMeta-v0", "TTC-Replay-v0"])
@pytest.mark.parametrize("kwargs, message", [
    ({"max_episodes": 2**70}, r"max_episodes \(H\) must be <= 1000"),
    ({"max_tokens": 2**70}, r"max_tokens \(C0\) must be <= 1000000000"),
    ({"num_prover_samples": 2**63}, r"num_prover_samples \(K\) must be <= 4096"),
])
def test_sizes_beyond_any_budget_are_refused_in_one_line(env_id, kwargs, message):
    if env_id == "TTC-Replay-v0" and "num_prover_samples" in kwargs:
        pytest.skip("TTC-Replay-v0 has no prover")
    extra = {"engine": "micro"} if "Math" in env_id else {}
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **extra, **kwargs)


def test_a_grader_timeout_beyond_a_day_is_refused():
    from ttc_gym.grading import compare_answers

    with pytest.raises(ValueError, match="timeout must be at most 86400 seconds"):
        compare_answers("x", "y", timeout=1e308)


def test_traces_analyze_with_an_unknown_engine_is_one_line(tmp_path, monkeypatch, capsys):
    from ttc_gym.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    traces = tmp_path / "t.jsonl"
    traces.write_text('{"problem": "What is 2+2?", "answer": "4", "completion": "It is 4. \\\\boxed{4}"}\n')
    assert main(["traces", "analyze", str(traces), "--out", str(tmp_path / "an"), "--engine", "nope-engine-xyz",
                 "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "ttc-gym traces analyze: error: " in err and "nope-engine-xyz" in err and "Traceback" not in err


def _interrupted_trainer(argv, prog):
    raise KeyboardInterrupt


def test_ctrl_c_during_train_is_one_line(monkeypatch, capsys):
    from ttc_gym.training import TRAINERS
    from ttc_gym.cli import main

    monkeypatch.setitem(TRAINERS, "TTC-Sim-v0", f"{__name__}:_interrupted_trainer")
    assert main(["train", "--env", "TTC-Sim-v0", "--iterations", "1"]) == 130
    assert capsys.readouterr().err.strip() == "ttc-gym train: interrupted."


# -- item 8: a port out of range, no problems to collect, hand-edited results --------------------------


def test_a_port_out_of_range_is_refused():
    from ttc_gym.integrations.openenv import serve

    with pytest.raises(ValueError, match="port must be <= 65535, got 99999"):
        serve("TTC-Sim-v0", port=99999)


def test_traces_collect_with_no_problems_is_an_error(tmp_path, capsys):
    from ttc_gym.cli import main

    out = tmp_path / "c.jsonl"
    assert main(["traces", "collect", "--n", "-1", "--out", str(out), "--engine", "micro", "--no-progress"]) == 2
    assert "--n) must be >= 1, got -1" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("change, why", [
    ({"total_reward": float("nan")}, "not finite"),
    ({"outcome": 7}, "outcome is 7, not 0 or 1"),
    ({"outcome": float("inf")}, "not finite"),
    ({"j_curve": [0.5, 3.0], "token_curve": [0, 5]}, "outside [0, 1]"),
    ({"tokens_used": -5}, "negative"),
])
def test_hand_edited_results_records_are_damaged_not_ranked(change, why):
    from ttc_gym.bench.results_file import record_problem

    good = {"agent": "oracle", "budget": "4", "seed": 0, "total_reward": 1.0, "outcome": 1.0, "episodes_used": 1,
            "tokens_used": 10, "j_curve": [0.2, 0.9], "token_curve": [0, 10]}
    assert record_problem(good) is None
    assert why in record_problem({**good, **change})


# -- item 7: one traces analyze per output folder ------------------------------------------------------


def test_a_second_traces_analyze_on_a_busy_folder_stops_at_once(tmp_path, capsys):
    from ttc_gym.cli import main
    from ttc_gym.folder_lock import FolderLock

    traces = tmp_path / "t.jsonl"
    traces.write_text('{"problem": "What is 2+2?", "answer": "4", "completion": "It is 4. \\\\boxed{4}"}\n')
    out = tmp_path / "an"
    out.mkdir()
    with FolderLock(out, what="ttc-gym traces analyze"):  # a first run holds the folder
        assert main(["traces", "analyze", str(traces), "--out", str(out), "--resume", "--engine", "micro",
                     "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "is in use by another ttc-gym traces analyze (pid" in err
    assert not (out / "analysed.jsonl").exists()  # it computed and wrote nothing


# -- item 13: the same field aliases in every trace form -----------------------------------------------


@pytest.mark.parametrize("row", [
    {"question": "What is 2+2?", "answer": "4", "trace": "2+2 is 4."},
    {"prompt": "What is 2+2?", "gold": "4", "trace": "2+2 is 4."},
    {"problem": "What is 2+2?", "final_answer": "4", "trace": "2+2 is 4."},
])
def test_raw_trace_rows_take_the_aliases_of_every_other_form(tmp_path, row):
    import json

    from ttc_gym.traces.loaders import load_raw_traces

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [trace] = load_raw_traces(path)
    assert (trace.problem, trace.answer, trace.trace) == ("What is 2+2?", "4", "2+2 is 4.")
