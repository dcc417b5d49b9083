"""Append-only JSONL logs (ttc_gym.jsonl_log): forgiving reads, repairs that keep the original and the
kept lines' exact bytes, appends that a failed write leaves no half line of; and the analysed-traces
file (ttc_gym.traces.analyze) repaired through it."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from ttc_gym.jsonl_log import JsonlAppender, LogRead, move_to_backup, read_jsonl_log, repair_jsonl_log
from ttc_gym.traces import ANALYSED_FORMAT, row_to_raw_trace
from ttc_gym.traces.analyze import ANALYSED_FILE, analyse_file, read_analysed_file


def needs_n(record) -> str | None:
    """The check of these tests: a record is an object with an integer `n`."""
    if not isinstance(record, dict) or not isinstance(record.get("n"), int):
        return f"no integer n in {record!r:.40}"
    return None


# Kept lines written three ways, so that any re-serialisation would change some byte: non-ASCII kept
# as is (ensure_ascii=False), non-ASCII escaped (the default), and spacing json.dumps does not make.
FIRST = json.dumps({"n": 1, "name": "Gödel ∀x", "emoji": "🙂"}, ensure_ascii=False).encode("utf-8") + b"\n"
SECOND = json.dumps({"n": 2, "name": "café"}).encode("utf-8") + b"\n"
THIRD = b'{"n":3,   "list":[1,2 ,3]}\n'
RECORDS = [json.loads(FIRST), json.loads(SECOND), json.loads(THIRD)]


def backups(path) -> list:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


def test_valid_lines_read_back_and_a_repair_changes_nothing(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(FIRST + SECOND + THIRD)
    read = read_jsonl_log(path, needs_n)
    assert read.records == RECORDS and read.lines == [FIRST, SECOND, THIRD]
    assert read.damaged == [] and not read.torn and read.good_end == read.size == path.stat().st_size
    assert read.notice(path) is None
    assert repair_jsonl_log(path, read) is None
    assert path.read_bytes() == FIRST + SECOND + THIRD and backups(path) == []


def test_a_missing_file_reads_as_empty(tmp_path):
    read = read_jsonl_log(tmp_path / "none.jsonl", needs_n)
    assert read == LogRead()


def test_a_torn_last_line_is_cut_off_without_a_backup(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(FIRST + SECOND + b'{"n": 3, "na')  # a write cut short by a kill
    read = read_jsonl_log(path, needs_n)
    assert read.records == RECORDS[:2] and read.torn and read.damaged == [(3, "cut short")]
    assert read.good_end == len(FIRST + SECOND) and read.size == read.good_end + 12
    assert repair_jsonl_log(path, read) is None
    assert path.read_bytes() == FIRST + SECOND and backups(path) == []


@pytest.mark.parametrize("bad, why", [
    (b"{not json", "not JSON"),
    (b'{"n": "\xff\xfe"}', "not UTF-8"),
    (b"", "empty"),
    (b"   \t", "empty"),
    (b'{"m": 2}', "no integer n in {'m': 2}"),
    (b"null", "no integer n in None"),
    (b'{"n": "a\rb"}', "not JSON"),  # a stray carriage return: not a line end, and not JSON either
])
def test_a_damaged_middle_line_is_dropped_with_a_backup_of_the_original_bytes(tmp_path, bad, why):
    path = tmp_path / "log.jsonl"
    original = FIRST + bad + b"\n" + SECOND + THIRD
    path.write_bytes(original)
    read = read_jsonl_log(path, needs_n)
    assert read.records == RECORDS and read.damaged == [(2, why)] and not read.torn
    backup = repair_jsonl_log(path, read)
    assert backup is not None and backups(path) == [backup]
    assert backup.read_bytes() == original
    assert path.read_bytes() == FIRST + SECOND + THIRD  # the kept lines' own bytes, not re-serialised
    assert not list(tmp_path.glob(".*repair-tmp"))
    again = read_jsonl_log(path, needs_n)
    assert again.records == RECORDS and again.damaged == []


def test_damage_in_the_middle_and_a_torn_end_are_repaired_together(tmp_path):
    path = tmp_path / "log.jsonl"
    original = FIRST + b"{}\n" + SECOND + b'{"n": 9'
    path.write_bytes(original)
    read = read_jsonl_log(path, needs_n)
    assert read.damaged == [(2, "no integer n in {}"), (4, "cut short")] and read.torn
    backup = repair_jsonl_log(path, read)
    assert backup.read_bytes() == original and path.read_bytes() == FIRST + SECOND


def test_a_byte_order_mark_may_start_the_file_and_is_kept(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + FIRST + b"oops\n" + SECOND)
    read = read_jsonl_log(path, needs_n)
    assert read.records == RECORDS[:2] and read.damaged == [(2, "not JSON")]
    repair_jsonl_log(path, read)
    assert path.read_bytes() == b"\xef\xbb\xbf" + FIRST + SECOND


def test_a_failed_repair_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    original = FIRST + b"x\n" + SECOND
    path.write_bytes(original)
    read = read_jsonl_log(path, needs_n)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("ttc_gym.jsonl_log.shutil.copy2", no_space)
    with pytest.raises(OSError, match="No space"):
        repair_jsonl_log(path, read)
    assert path.read_bytes() == original and list(tmp_path.iterdir()) == [path]


def test_the_notice_is_one_line_naming_lines_reason_unit_and_backup():
    path = Path("out/results.jsonl")
    one = LogRead(damaged=[(4, "not JSON")])
    assert one.notice(path) == (f"{path}: skipped 1 damaged record (line 4: not JSON); "
                                "its problem will be computed again.")
    many = LogRead(damaged=[(n, "reason\nwith a newline " + "x" * 200) for n in range(1, 8)])
    text = many.notice(path, unit="trace", backup=path.with_name("results.jsonl.bak-1"))
    assert text.startswith(f"{path}: skipped 7 damaged records (lines 1, 2, 3, 4, 5, ...: reason with a newline x")
    assert "...); their traces will be computed again. The file as it was is kept as " in text
    assert text.endswith("results.jsonl.bak-1.") and "\n" not in text and len(text) < 300


class FailingFile:
    """A file whose next write puts `partial` bytes down and then raises `error` (a full disk, or an
    interrupt in the middle of a write)."""

    def __init__(self, raw, error: BaseException, partial: int = 5):
        self.raw, self.error, self.partial = raw, error, partial
        self.armed = True

    def write(self, data):
        if self.armed:
            self.armed = False
            self.raw.write(bytes(data)[:self.partial])
            raise self.error
        return self.raw.write(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_append_is_undone(tmp_path, error):
    path = tmp_path / "log.jsonl"
    with JsonlAppender(path) as log:
        log.append('{"n": 1}\n')
        log._file = FailingFile(log._file, error)
        with pytest.raises(type(error)):
            log.append_many(['{"n": 2}\n', '{"n": 3}\n'])
        assert path.read_bytes() == b'{"n": 1}\n'  # the partial write was cut back
        log.append('{"n": 4}\n')
    assert path.read_bytes() == b'{"n": 1}\n{"n": 4}\n'


def test_append_writes_at_once_and_sync_fsyncs(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr("ttc_gym.jsonl_log.os.fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with JsonlAppender(path) as log:
        log.append_many([FIRST.decode("utf-8")], sync=True)
        assert path.read_bytes() == FIRST and len(synced) == 1  # unbuffered: on disk before close
        log.append(SECOND.decode("utf-8"))
        assert path.read_bytes() == FIRST + SECOND and len(synced) == 1


def test_a_failed_fsync_undoes_the_batch(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"

    def failing(fd):
        raise OSError(errno.EIO, "I/O error")

    with JsonlAppender(path) as log:
        log.append('{"n": 1}\n')
        monkeypatch.setattr("ttc_gym.jsonl_log.os.fsync", failing)
        with pytest.raises(OSError, match="I/O"):
            log.append('{"n": 2}\n', sync=True)
    assert path.read_bytes() == b'{"n": 1}\n'


@pytest.mark.parametrize("line", ['{"n": 1}', '{"n": 1}\n{"n": 2}\n', b'{"n": 1}\n'])
def test_an_append_that_is_not_one_line_of_text_is_refused(tmp_path, line):
    path = tmp_path / "log.jsonl"
    with JsonlAppender(path) as log, pytest.raises(ValueError, match="one line of text ending in a newline"):
        log.append_many(['{"n": 0}\n', line])
    assert path.read_bytes() == b""  # nothing of the batch was written


def test_move_to_backup(tmp_path):
    path = tmp_path / "log.jsonl"
    assert move_to_backup(path) is None
    path.write_bytes(b"")
    assert move_to_backup(path) is None and path.exists()
    path.write_bytes(FIRST)
    target = move_to_backup(path)
    assert not path.exists() and target.read_bytes() == FIRST and target.name.startswith("log.jsonl.bak-")


# ------------------------------------------------------------------ the analysed-traces file uses it
def analysed_row(trace_id: str) -> dict:
    return {
        "format": ANALYSED_FORMAT, "problem_id": "p1", "problem": "Was ist 2+3? ∑", "answer": "5",
        "trace_id": trace_id, "model": "m", "episodes": [{"text": "2+3 ist 5.", "tokens": 5}],
        "prefixes": [
            {"n_episodes": 0, "tokens": 0, "forced_answers": ["5", "6"], "correct": [True, False], "J": 0.5},
            {"n_episodes": 1, "tokens": 5, "forced_answers": ["5", None], "correct": [True, False], "J": 0.5},
        ],
        "prover": {"engine": "default", "k": 2, "max_new_tokens": 24, "template": "boxed"},
        "final_answer": "5", "final_correct": True,
    }


def test_a_damaged_analysed_file_is_repaired_with_a_backup_and_named_in_a_notice(tmp_path):
    rows = [analysed_row("p1#0"), analysed_row("p1#1")]
    lines = [json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows]
    path = tmp_path / ANALYSED_FILE
    original = lines[0] + json.dumps({**rows[0], "format": "v0"}).encode() + b"\n" + lines[1]
    path.write_bytes(original)
    found = read_analysed_file(path)
    assert found.records == rows and found.damaged[0][0] == 2 and "'format'" in found.damaged[0][1]

    def no_prover():
        raise AssertionError("nothing is left to compute: no prover is built")

    traces = [row_to_raw_trace(r) for r in rows]
    run = analyse_file(traces, tmp_path, no_prover, rows[0]["prover"], resume=True, progress=False)
    assert run.computed == 0 and run.rows == rows
    (backup,) = backups(path)
    assert backup.read_bytes() == original and path.read_bytes() == lines[0] + lines[1]
    (notice,) = run.notices
    assert notice.startswith(f"{path}: skipped 1 damaged record (line 2: row: field 'format'")
    assert "its trace will be computed again" in notice and backup.name in notice
