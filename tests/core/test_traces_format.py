"""Trace files: the raw and analysed formats (ttc_gym.traces.format) and the export loaders
(ttc_gym.traces.loaders)."""

from __future__ import annotations

import copy
import json

import pytest

from ttc_gym.traces import (
    ANALYSED_FORMAT,
    TraceFormatError,
    check_analysed_row,
    load_raw_traces,
    read_analysed_traces,
    row_to_raw_trace,
)


def analysed_row(**changes) -> dict:
    row = {
        "format": ANALYSED_FORMAT, "problem_id": "p1", "problem": "What is 2+3?", "answer": "5", "trace_id": "p1#0",
        "model": "m", "episodes": [{"text": "2+3 is 6.", "tokens": 5}, {"text": "Wait, it is 5.", "tokens": 6}],
        "prefixes": [
            {"n_episodes": 0, "tokens": 0, "forced_answers": ["5", "6"], "correct": [True, False], "J": 0.5},
            {"n_episodes": 1, "tokens": 5, "forced_answers": ["6", None], "correct": [False, False], "J": 0.0},
            {"n_episodes": 2, "tokens": 11, "forced_answers": ["5", "5"], "correct": [True, None], "J": 1.0},
        ],
        "prover": {"engine": "default", "k": 2, "max_new_tokens": 24, "template": "boxed"},
        "final_answer": "5", "final_correct": True,
    }
    row.update(changes)
    return row


def write_jsonl(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_valid_analysed_row_passes_and_reads_back(tmp_path):
    assert check_analysed_row(analysed_row()) is not None
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [analysed_row(), analysed_row(trace_id="p1#1")])
    rows = read_analysed_traces(path)
    assert [r["trace_id"] for r in rows] == ["p1#0", "p1#1"]


@pytest.mark.parametrize("field, mutate, message", [
    ("J", lambda r: r["prefixes"][2].update(J=0.5), "prefixes\\[2\\].J"),
    ("tokens", lambda r: r["prefixes"][2].update(tokens=12), "prefixes\\[2\\].tokens"),
    ("correct", lambda r: r["prefixes"][0].update(correct=[True]), "prefixes\\[0\\].correct"),
    ("prefixes", lambda r: r["prefixes"].pop(), "'prefixes' must have one entry per prefix"),
    ("episodes", lambda r: r["episodes"][0].pop("tokens"), "episodes\\[0\\]"),
    ("prover", lambda r: r["prover"].pop("k"), "'prover'"),
    ("format", lambda r: r.update(format="x"), "'format'"),
    ("answer", lambda r: r.pop("answer"), "'answer'"),
    ("null J", lambda r: r["prefixes"][1].update(correct=[None, None]), "prefixes\\[1\\].J' must be null"),
])
def test_bad_analysed_rows_name_line_and_field(tmp_path, field, mutate, message):
    bad = copy.deepcopy(analysed_row())
    mutate(bad)
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [analysed_row(trace_id="ok"), bad])
    with pytest.raises(TraceFormatError, match=f"a.jsonl:2: .*{message}"):
        read_analysed_traces(path)


def test_duplicate_trace_id_and_non_json_line(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [analysed_row(), analysed_row()])
    with pytest.raises(TraceFormatError, match="already on line 1"):
        read_analysed_traces(path)
    write_jsonl(path, [analysed_row(), "{not json"])
    with pytest.raises(TraceFormatError, match="a.jsonl:2: not a JSON object"):
        read_analysed_traces(path)


def test_loaders_read_every_export(tmp_path):
    rows = [
        {"problem": "What is 2+3?", "answer": "5", "trace": "It is 5.", "model": "m", "tokens": 4},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+1?"},
                      {"role": "assistant", "content": "<think>\n1+1 is 2.\n\nWait, yes 2.\n</think>\n\nSo $\\boxed{2}$."}],
         "answer": "2", "id": "q2"},
        {"question": "What is 3*3?", "completion": "3*3 = 9.\n\nWait, 9.\n</think>\nThe answer is $\\boxed{9}$",
         "final_answer": "9"},
        {"prompt": "What is 10-4?", "response": "10-4 = 6, so the answer is $\\boxed{6}$.", "target": 6},
        {"messages": [{"role": "user", "content": "What is 7+1?"},
                      {"role": "assistant", "content": "The answer is 8.", "reasoning_content": "7+1 = 8."}],
         "gold": "#### 8"},
    ]
    path = tmp_path / "t.jsonl"
    write_jsonl(path, rows)
    traces = load_raw_traces(path)
    assert [t.problem for t in traces] == ["What is 2+3?", "What is 1+1?", "What is 3*3?", "What is 10-4?", "What is 7+1?"]
    assert [t.answer for t in traces] == ["5", "2", "9", "6", "8"]
    assert traces[0].trace == "It is 5." and traces[0].model == "m" and traces[0].tokens == 4
    assert traces[1].trace == "1+1 is 2.\n\nWait, yes 2." and traces[1].final_answer == "2"
    assert traces[1].problem_id == "q2" and traces[1].trace_id == "q2#0"
    assert traces[2].trace == "3*3 = 9.\n\nWait, 9." and traces[2].final_answer == "9"  # prompt opened <think>
    assert traces[3].trace.startswith("10-4 = 6") and traces[3].final_answer == "6"  # plain completion
    assert traces[4].trace == "7+1 = 8." and traces[4].final_answer == "8"
    assert len({t.trace_id for t in traces}) == 5


def test_unclosed_think_has_no_final_answer():
    t = row_to_raw_trace({"problem": "Q?", "completion": "<think>\nStill thinking \\boxed{3}", "answer": "3"})
    assert t.trace == "Still thinking \\boxed{3}" and t.final_answer is None


@pytest.mark.parametrize("row, message", [
    ({"problem": "Q?", "trace": "t"}, "expected a field 'answer'"),
    ({"problem": "Q?", "completion": "x"}, "expected a gold answer field"),
    ({"answer": "1", "foo": "x"}, "expected a 'trace' field"),
    ({"answer": "1", "messages": [{"role": "assistant", "content": "x"}]}, "needs a 'user' turn"),
    ({"answer": "1", "messages": "hi"}, "'messages' must be a non-empty list"),
    ({"problem": "Q?", "answer": "1", "trace": "t", "tokens": -1}, "'tokens' must be an integer >= 0"),
    ({"problem": "Q?", "answer": "1", "trace": "t", "episodes": ["a"], "episode_tokens": [1, 2]}, "episode_tokens"),
    ({"problem": "Q?", "answer": "1", "trace": "t", "format": "ttc-gym/trace/v2"}, "'format' must be"),
    ({"format": ANALYSED_FORMAT, "problem": "Q?", "answer": "1", "trace_id": "x", "problem_id": "p"},
     "'episodes' must be a list"),
])
def test_bad_raw_rows_name_line_and_field(tmp_path, row, message):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [{"problem": "Q?", "answer": "1", "trace": "fine"}, row])
    with pytest.raises(TraceFormatError, match=f"t.jsonl:2: .*{message}"):
        load_raw_traces(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_raw_traces(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(TraceFormatError, match="no trace found"):
        load_raw_traces(tmp_path / "e.jsonl")
    write_jsonl(tmp_path / "d.jsonl", [{"problem": "Q", "answer": "1", "trace": "a", "trace_id": "x"},
                                       {"problem": "Q", "answer": "1", "trace": "b", "trace_id": "x"}])
    with pytest.raises(TraceFormatError, match="occurs twice"):
        load_raw_traces(tmp_path / "d.jsonl")


def test_analysed_rows_load_as_raw_traces_with_their_episodes(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [analysed_row(), {"problem": "Q?", "answer": "1", "trace": "t"}])
    first, second = load_raw_traces(path)
    assert first.trace_id == "p1#0" and first.episodes == ("2+3 is 6.", "Wait, it is 5.")
    assert first.episode_tokens == (5, 6) and first.tokens == 11 and first.final_answer == "5"
    assert second.episodes is None
    from ttc_gym.traces.loaders import analysed_rows_in

    assert [r["trace_id"] for r in analysed_rows_in(path)] == ["p1#0"]


def test_natural_episodes_of_budget_forcing_are_checked_and_carried(tmp_path):
    raw = {"problem": "Q", "answer": "5", "trace": "a\n\nb", "episodes": ["a", "Wait, b"], "natural_episodes": 1}
    trace = row_to_raw_trace(raw)
    assert trace.natural_episodes == 1 and row_to_raw_trace(trace.to_row()).natural_episodes == 1
    for bad, message in ((3, "from 0 to the number of episodes \\(2\\)"), (-1, "from 0"), ("1", "integer")):
        with pytest.raises(TraceFormatError, match=f"natural_episodes.*{message}"):
            row_to_raw_trace({**raw, "natural_episodes": bad}, path="t.jsonl", line=4)
    with pytest.raises(TraceFormatError, match="natural_episodes' needs the trace's 'episodes'"):
        row_to_raw_trace({"problem": "Q", "answer": "5", "trace": "t", "natural_episodes": 0})
    assert row_to_raw_trace(analysed_row(natural_episodes=1)).natural_episodes == 1  # analysed -> raw keeps it
    with pytest.raises(TraceFormatError, match="natural_episodes"):
        check_analysed_row(analysed_row(natural_episodes=3))
