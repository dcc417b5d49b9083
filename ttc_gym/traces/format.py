"""The two JSONL formats of reasoning traces (docs/traces.md): raw traces, as a model wrote them, and
analysed traces, split into episodes with J measured after every prefix (docs/formulation.md §2, §6).

A **raw trace** row (`RawTrace`; `raw_trace_row` / `read_raw_traces`):

    {"format": "ttc-gym/trace/v1",                     # optional
     "problem": str, "answer": str (gold), "trace": str (the reasoning text),
     "problem_id": str, "trace_id": str, "model": str,  # optional
     "tokens": int,                                     # optional: tokens of the whole trace
     "episodes": [str, ...], "episode_tokens": [int, ...],  # optional: the trace already split
     "final_answer": str,                               # optional: the answer the trace ended with
     "natural_episodes": int}                           # optional: episodes before budget forcing

Other exports (a "messages" chat row, a `<think>` completion, a plain completion) are converted to
this by `ttc_gym.traces.loaders`.

An **analysed trace** row (`ANALYSED_FORMAT`; `check_analysed_row` / `read_analysed_traces`): one
trace per line; several traces of one problem share `problem_id`:

    {"format": "ttc-gym/analysed-trace/v1", "problem_id": str, "problem": str, "answer": str,
     "trace_id": str, "model": str|null,
     "episodes": [{"text": str, "tokens": int}, ...],
     "prefixes": [{"n_episodes": j, "tokens": int, "forced_answers": [str|null]*K,
                   "correct": [bool|null]*K, "J": float|null}, ... for j = 0..n],
     "prover": {"engine": str, "k": int, "max_new_tokens": int, "template": str},
     "final_answer": str|null, "final_correct": bool|null,
     "natural_episodes": int}                                 # optional, as in the raw row

null means not graded (or grading incomplete); J is the mean of the non-null `correct` values
(null when there are none). Extra fields are allowed (this module adds `problem_tokens`,
`answer_tokens` per prefix and `segmentation`); fields are never renamed or removed within v1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ttc_gym.errors import TTCGymError
from ttc_gym.files import check_regular_file, too_deep

RAW_FORMAT = "ttc-gym/trace/v1"
ANALYSED_FORMAT = "ttc-gym/analysed-trace/v1"


class TraceFormatError(TTCGymError, ValueError):
    """A trace file's row does not fit its format; the message names the file, line and field."""


@dataclass(frozen=True)
class RawTrace:
    """One reasoning trace as a model wrote it (before segmentation and analysis).

    Attributes:
        problem_id: the problem's id (traces of one problem share it).
        problem: the problem's text.
        answer: the gold final answer.
        trace: the reasoning text (for a `<think>` completion, the thinking only).
        trace_id: unique within a file (default "<problem_id>#<n>" by order of appearance).
        model: the model that wrote it, when known.
        tokens: tokens of the whole trace, when known.
        episodes: the trace already split into episodes (e.g. by `ttc-gym traces collect`, whose
            agent writes one episode per step), else None (segment the text).
        episode_tokens: tokens of each of those episodes, when known.
        final_answer: the answer the trace ended with, when known (with budget forcing: where the
            model ended it by itself).
        natural_episodes: with budget forcing (`ttc-gym traces collect --budget-forcing W`), how many
            of `episodes` the model wrote before it was first forced on; each later episode starts
            with a cue of `ttc_gym.prompts.BUDGET_FORCING_CUES`. None: no budget forcing.
    """

    problem_id: str
    problem: str
    answer: str
    trace: str
    trace_id: str
    model: str | None = None
    tokens: int | None = None
    episodes: tuple[str, ...] | None = None
    episode_tokens: tuple[int, ...] | None = None
    final_answer: str | None = None
    natural_episodes: int | None = None

    def to_row(self) -> dict:
        """The raw trace as a JSON-ready row of the raw format."""
        row: dict[str, Any] = {"format": RAW_FORMAT, "problem_id": self.problem_id, "problem": self.problem,
                               "answer": self.answer, "trace_id": self.trace_id, "model": self.model,
                               "trace": self.trace}
        if self.tokens is not None:
            row["tokens"] = self.tokens
        if self.episodes is not None:
            row["episodes"] = list(self.episodes)
        if self.episode_tokens is not None:
            row["episode_tokens"] = list(self.episode_tokens)
        if self.final_answer is not None:
            row["final_answer"] = self.final_answer
        if self.natural_episodes is not None:
            row["natural_episodes"] = self.natural_episodes
        return row


def _where(path: Any, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path or "row")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_field(row: dict, key: str, where: str, *, optional: bool = False, empty_ok: bool = False) -> str | None:
    if key not in row or row[key] is None:
        if optional:
            return None
        raise TraceFormatError(f"{where}: expected a field {key!r} (a string), got fields {sorted(row)}.")
    value = row[key]
    if _is_int(value) or isinstance(value, float):  # a numeric gold answer or id, written as a number
        if isinstance(value, float) and not math.isfinite(value):
            raise TraceFormatError(f"{where}: field {key!r} must be a string or finite number, got {value!r}.")
        value = str(value)
    if not isinstance(value, str):
        raise TraceFormatError(f"{where}: field {key!r} must be a string, got {type(value).__name__} {value!r:.80}.")
    if not empty_ok and not value.strip():
        raise TraceFormatError(f"{where}: field {key!r} must not be empty, got {value!r}.")
    return value


def raw_trace_row(row: Any, *, path: Any = None, line: int | None = None, default_id: str | None = None) -> RawTrace:
    """A `RawTrace` from a row of the raw format (a dict); TraceFormatError naming the line and field."""
    where = _where(path, line)
    if not isinstance(row, dict):
        raise TraceFormatError(f"{where}: expected a JSON object (a raw trace row), got {type(row).__name__}.")
    fmt = row.get("format", RAW_FORMAT)
    if fmt != RAW_FORMAT:
        raise TraceFormatError(f"{where}: field 'format' must be {RAW_FORMAT!r} for a raw trace, got {fmt!r}"
                               + (" (an analysed trace: read it with ttc_gym.traces.loaders.load_raw_traces)."
                                  if fmt == ANALYSED_FORMAT else "."))
    problem = _text_field(row, "problem", where)
    answer = _text_field(row, "answer", where)
    trace = _text_field(row, "trace", where, empty_ok=True)
    problem_id = _text_field(row, "problem_id", where, optional=True) or default_id or where
    trace_id = _text_field(row, "trace_id", where, optional=True) or f"{problem_id}#{line or 0}"
    model = _text_field(row, "model", where, optional=True)
    final_answer = _text_field(row, "final_answer", where, optional=True, empty_ok=True)
    tokens = row.get("tokens")
    if tokens is not None and (not _is_int(tokens) or tokens < 0):
        raise TraceFormatError(f"{where}: field 'tokens' must be an integer >= 0, got {tokens!r}.")
    episodes = row.get("episodes")
    if episodes is not None:
        if not isinstance(episodes, list) or not all(isinstance(e, str) for e in episodes):
            raise TraceFormatError(f"{where}: field 'episodes' must be a list of strings, got {episodes!r:.80}.")
        episodes = tuple(episodes)
    episode_tokens = row.get("episode_tokens")
    if episode_tokens is not None:
        if (not isinstance(episode_tokens, list) or not all(_is_int(t) and t >= 0 for t in episode_tokens)
                or episodes is None or len(episode_tokens) != len(episodes)):
            raise TraceFormatError(f"{where}: field 'episode_tokens' must be a list of integers >= 0, one per "
                                   f"episode of 'episodes', got {episode_tokens!r:.80}.")
        episode_tokens = tuple(episode_tokens)
    natural = _natural_episodes(row, where, None if episodes is None else len(episodes))
    return RawTrace(problem_id=problem_id, problem=problem, answer=answer, trace=trace, trace_id=trace_id,
                    model=model, tokens=tokens, episodes=episodes, episode_tokens=episode_tokens,
                    final_answer=final_answer, natural_episodes=natural)


def _natural_episodes(row: dict, where: str, episodes: int | None) -> int | None:
    """The row's optional `natural_episodes` (budget forcing), checked against its episodes."""
    value = row.get("natural_episodes")
    if value is None:
        return None
    if episodes is None:
        raise TraceFormatError(f"{where}: field 'natural_episodes' needs the trace's 'episodes' (the episodes "
                               f"before and after budget forcing), and the row has none.")
    if not _is_int(value) or not 0 <= value <= episodes:
        raise TraceFormatError(f"{where}: field 'natural_episodes' must be an integer from 0 to the number of "
                               f"episodes ({episodes}), got {value!r}.")
    return value


def jsonl_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line of a JSONL file; TraceFormatError naming the
    line that is not JSON."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trace file {str(path)!r} does not exist (expected a .jsonl file, one trace a line).")
    check_regular_file(path, "a trace file")
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise TraceFormatError(f"{path}:{number}: not UTF-8 text (byte {err.start} of the line: "
                                       f"{err.reason}); re-save the file as UTF-8.") from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as err:
                raise TraceFormatError(f"{path}:{number}: not a JSON object ({err.msg} at column {err.colno}).") from None
            except RecursionError:
                raise TraceFormatError(too_deep(f"{path}:{number}")) from None


def check_unique_ids(traces: list[RawTrace], path: Any = None) -> list[RawTrace]:
    """The traces, after checking that no trace_id occurs twice (TraceFormatError naming it)."""
    seen: set[str] = set()
    for t in traces:
        if t.trace_id in seen:
            raise TraceFormatError(f"{path or 'traces'}: trace_id {t.trace_id!r} occurs twice; trace ids must be unique.")
        seen.add(t.trace_id)
    return traces


# ---------------------------------------------------------------------------------- analysed traces
def _check_list(value: Any, where: str, key: str) -> list:
    if not isinstance(value, list):
        raise TraceFormatError(f"{where}: field {key!r} must be a list, got {type(value).__name__} {value!r:.60}.")
    return value


def check_analysed_row(row: Any, *, path: Any = None, line: int | None = None) -> dict:
    """`row` itself when it is a valid analysed trace (the format in this module's docstring), else
    TraceFormatError naming the line and the field."""
    where = _where(path, line)
    if not isinstance(row, dict):
        raise TraceFormatError(f"{where}: expected a JSON object (an analysed trace), got {type(row).__name__}.")
    if row.get("format") != ANALYSED_FORMAT:
        raise TraceFormatError(f"{where}: field 'format' must be {ANALYSED_FORMAT!r}, got {row.get('format')!r}.")
    for key in ("problem_id", "problem", "answer", "trace_id"):
        _text_field(row, key, where)
    if row.get("model") is not None and not isinstance(row["model"], str):
        raise TraceFormatError(f"{where}: field 'model' must be a string or null, got {row['model']!r}.")
    episodes = _check_list(row.get("episodes"), where, "episodes")
    for i, e in enumerate(episodes):
        if not isinstance(e, dict) or not isinstance(e.get("text"), str) or not _is_int(e.get("tokens")) or e["tokens"] < 0:
            raise TraceFormatError(f"{where}: field 'episodes[{i}]' must be {{\"text\": str, \"tokens\": int >= 0}}, "
                                   f"got {e!r:.80}.")
    prover = row.get("prover")
    if (not isinstance(prover, dict) or not isinstance(prover.get("engine"), str) or not _is_int(prover.get("k"))
            or prover["k"] < 1 or not _is_int(prover.get("max_new_tokens")) or not isinstance(prover.get("template"), str)):
        raise TraceFormatError(f"{where}: field 'prover' must be {{\"engine\": str, \"k\": int >= 1, "
                               f"\"max_new_tokens\": int, \"template\": str}}, got {prover!r:.120}.")
    k = prover["k"]
    prefixes = _check_list(row.get("prefixes"), where, "prefixes")
    if len(prefixes) != len(episodes) + 1:
        raise TraceFormatError(f"{where}: field 'prefixes' must have one entry per prefix j = 0..n "
                               f"({len(episodes) + 1} for {len(episodes)} episodes), got {len(prefixes)}.")
    cumulative = 0
    for j, p in enumerate(prefixes):
        at = f"{where}: field 'prefixes[{j}]"
        if not isinstance(p, dict):
            raise TraceFormatError(f"{at}' must be an object, got {p!r:.60}.")
        if p.get("n_episodes") != j or not _is_int(p.get("n_episodes")):
            raise TraceFormatError(f"{at}.n_episodes' must be {j}, got {p.get('n_episodes')!r}.")
        cumulative += episodes[j - 1]["tokens"] if j else 0
        if not _is_int(p.get("tokens")) or p["tokens"] != cumulative:
            raise TraceFormatError(f"{at}.tokens' must be the cumulative episode tokens {cumulative}, "
                                   f"got {p.get('tokens')!r}.")
        answers, correct = p.get("forced_answers"), p.get("correct")
        if not isinstance(answers, list) or len(answers) != k or not all(a is None or isinstance(a, str) for a in answers):
            raise TraceFormatError(f"{at}.forced_answers' must be a list of K={k} strings or nulls, got {answers!r:.80}.")
        if not isinstance(correct, list) or len(correct) != k or not all(c is None or isinstance(c, bool) for c in correct):
            raise TraceFormatError(f"{at}.correct' must be a list of K={k} booleans or nulls, got {correct!r:.80}.")
        graded = [c for c in correct if c is not None]
        expected = sum(graded) / len(graded) if graded else None
        value = p.get("J")
        if expected is None:
            if value is not None:
                raise TraceFormatError(f"{at}.J' must be null when no forced answer is graded, got {value!r}.")
        elif (isinstance(value, bool) or not isinstance(value, (int, float))
              or not math.isclose(value, expected, abs_tol=1e-9)):
            raise TraceFormatError(f"{at}.J' must be the mean of the graded 'correct' values ({expected:.6g}), "
                                   f"got {value!r}.")
    if row.get("final_answer") is not None and not isinstance(row["final_answer"], str):
        raise TraceFormatError(f"{where}: field 'final_answer' must be a string or null, got {row['final_answer']!r}.")
    if row.get("final_correct") is not None and not isinstance(row["final_correct"], bool):
        raise TraceFormatError(f"{where}: field 'final_correct' must be a boolean or null, got {row['final_correct']!r}.")
    _natural_episodes(row, where, len(episodes))
    return row


def analysed_to_raw(row: dict) -> RawTrace:
    """The raw trace of an analysed row (its episodes given, with their token counts): to analyse
    it again with another prover."""
    episodes = tuple(e["text"] for e in row["episodes"])
    tokens = tuple(e["tokens"] for e in row["episodes"])
    return RawTrace(problem_id=row["problem_id"], problem=row["problem"], answer=row["answer"],
                    trace="\n\n".join(episodes), trace_id=row["trace_id"], model=row.get("model"),
                    tokens=sum(tokens), episodes=episodes, episode_tokens=tokens, final_answer=row.get("final_answer"),
                    natural_episodes=row.get("natural_episodes"))


def read_analysed_traces(path: str | Path) -> list[dict]:
    """Every analysed trace of a JSONL file, validated (`check_analysed_row`); TraceFormatError on the
    first bad line, naming it and its field; a trace_id that occurs twice is an error."""
    rows, seen = [], {}
    for number, row in jsonl_rows(path):
        check_analysed_row(row, path=path, line=number)
        if row["trace_id"] in seen:
            raise TraceFormatError(f"{path}:{number}: trace_id {row['trace_id']!r} already on line {seen[row['trace_id']]}.")
        seen[row["trace_id"]] = number
        rows.append(row)
    return rows


def j_curve(row: dict) -> list[float | None]:
    """J after each prefix j = 0..n of an analysed trace (None where nothing was graded)."""
    return [p["J"] for p in row["prefixes"]]


def token_curve(row: dict) -> list[int]:
    """Cumulative trace tokens at each prefix j = 0..n of an analysed trace."""
    return [p["tokens"] for p in row["prefixes"]]
