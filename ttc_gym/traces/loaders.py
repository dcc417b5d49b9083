"""Raw traces from common JSONL exports (docs/traces.md): one row a line, any of

- **ttc-gym's raw format** (`ttc_gym.traces.format`): a `trace` field;
- **ttc-gym's analysed format**: its episodes (with their token counts) are the trace's, to be
  analysed again (`ttc_gym.traces.analyze` reuses a row whose prover is the one asked for);
- a **"messages" chat row**: `{"messages": [{"role": "user", "content": Q}, {"role": "assistant",
  "content": A}], "answer": gold}` (the last user turn is the problem, the last assistant turn the
  completion; an assistant `reasoning_content` field, as DeepSeek's API returns, is the thinking);
- a **`<think>` completion**: `{"problem"|"question"|"prompt": Q, "completion"|"response"|"output"|
  "generation"|"text": "<think>...</think> final solution", "answer": gold}`: the trace is the
  thinking (between the tags; a completion whose prompt opened the tag has only the closing one),
  and the final answer is read from the text after the tag;
- a **plain completion**: the same fields without tags: the whole completion is the trace, and the
  final answer is its last `\\boxed{}` (or "the answer is ...").

The gold answer is read from `answer`, `final_answer`, `target` or `gold` (a worked solution with a
`\\boxed{}` or GSM8K's `#### 42` gives its final answer, as `ttc_gym.problems` reads problems).
Optional: `problem_id`/`id`/`unique_id`, `trace_id`, `model`, `tokens`. Every form takes the same aliases:
the problem under any of `problem`/`question`/`prompt`/`input`, the gold under any of
`answer`/`final_answer`/`target`/`gold`/`gold_answer` (ttc-gym's raw `trace` rows too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttc_gym.answer_extraction import extract_answer
from ttc_gym.problems.loaders import gold_answer
from ttc_gym.traces.format import (
    ANALYSED_FORMAT,
    RAW_FORMAT,
    RawTrace,
    TraceFormatError,
    analysed_to_raw,
    check_analysed_row,
    check_unique_ids,
    jsonl_rows,
    raw_trace_row,
)

PROBLEM_FIELDS = ("problem", "question", "prompt", "input")
COMPLETION_FIELDS = ("completion", "response", "output", "generation", "text")
GOLD_FIELDS = ("answer", "final_answer", "target", "gold", "gold_answer")
ID_FIELDS = ("problem_id", "id", "unique_id")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _first(row: dict, names: tuple[str, ...]) -> str | None:
    for name in names:
        if row.get(name) is not None:
            return name
    return None


def split_think(completion: str, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE) -> tuple[str, str | None]:
    """(thinking, text after the thinking) of a completion: the text between `open_tag` and
    `close_tag` (the opening tag may be missing: a prompt that opened it), and what follows the
    closing tag (None when the thinking never closed: a trace cut by its budget). Without any tag:
    (the whole completion, None)."""
    start = completion.find(open_tag)
    end = completion.find(close_tag, start + len(open_tag) if start >= 0 else 0)
    if start < 0 and end < 0:
        return completion, None
    begin = start + len(open_tag) if start >= 0 else 0
    if end < 0:
        return completion[begin:].strip("\n"), None
    return completion[begin:end].strip("\n"), completion[end + len(close_tag):]


def _answer_of(text: str | None) -> str | None:
    if text is None:
        return None
    found = extract_answer(text, last_number_fallback=False)
    return found.strip() if found else None


def _message_text(message: Any, where: str, i: int) -> tuple[str, str, str | None]:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise TraceFormatError(f"{where}: field 'messages[{i}]' must be {{\"role\": str, \"content\": str}}, "
                               f"got {message!r:.80}.")
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise TraceFormatError(f"{where}: field 'messages[{i}].content' must be a string, got {content!r:.80}.")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return message["role"], content, reasoning if isinstance(reasoning, str) else None


def row_to_raw_trace(row: Any, *, path: Any = None, line: int | None = None) -> RawTrace:
    """A `RawTrace` from one row of any supported export (module docstring); TraceFormatError naming
    the line and what was expected."""
    where = f"{path}:{line}" if line is not None else str(path or "row")
    if not isinstance(row, dict):
        raise TraceFormatError(f"{where}: expected a JSON object (one trace), got {type(row).__name__}.")
    id_key = _first(row, ID_FIELDS)
    default_id = str(row[id_key]) if id_key else f"{Path(str(path)).name if path else 'row'}:{line or 0}"
    if row.get("format") == ANALYSED_FORMAT:  # analysed already: its episodes, to analyse again
        return analysed_to_raw(check_analysed_row(row, path=path, line=line))
    if "trace" in row or row.get("format") is not None:
        # the raw format's fields under the aliases every other form accepts ("question", "gold", ...)
        for field, aliases in (("problem", PROBLEM_FIELDS), ("answer", GOLD_FIELDS)):
            alias = None if field in row else _first(row, aliases)
            if alias is not None:
                row = {**{k: v for k, v in row.items() if k != alias}, field: row[alias]}
        return raw_trace_row(row, path=path, line=line, default_id=default_id)
    gold_key = _first(row, GOLD_FIELDS)
    if gold_key is None:
        raise TraceFormatError(f"{where}: expected a gold answer field (one of {list(GOLD_FIELDS)}), got fields "
                               f"{sorted(row)}.")
    gold = row[gold_key]
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(gold, str) or not gold.strip():
        raise TraceFormatError(f"{where}: field {gold_key!r} must be a non-empty string, got {gold!r:.80}.")
    try:
        gold, _ = gold_answer(gold, gold_key, where)
    except ValueError as err:
        raise TraceFormatError(str(err)) from None
    reasoning = None
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise TraceFormatError(f"{where}: field 'messages' must be a non-empty list of chat turns, got {messages!r:.80}.")
        turns = [_message_text(m, where, i) for i, m in enumerate(messages)]
        users = [content for role, content, _ in turns if role == "user"]
        assistants = [(content, r) for role, content, r in turns if role == "assistant"]
        if not users or not assistants:
            raise TraceFormatError(f"{where}: field 'messages' needs a 'user' turn (the problem) and an 'assistant' "
                                   f"turn (the trace), got roles {[t[0] for t in turns]}.")
        problem, (completion, reasoning) = users[-1], assistants[-1]
    else:
        problem_key, completion_key = _first(row, PROBLEM_FIELDS), _first(row, COMPLETION_FIELDS)
        if problem_key is None or completion_key is None:
            raise TraceFormatError(
                f"{where}: expected a 'trace' field (ttc-gym's raw format), a 'messages' list, or a problem field "
                f"(one of {list(PROBLEM_FIELDS)}) with a completion field (one of {list(COMPLETION_FIELDS)}); "
                f"got fields {sorted(row)}.")
        problem, completion = row[problem_key], row[completion_key]
        for key, value in ((problem_key, problem), (completion_key, completion)):
            if not isinstance(value, str):
                raise TraceFormatError(f"{where}: field {key!r} must be a string, got {value!r:.80}.")
    if not problem.strip():
        raise TraceFormatError(f"{where}: the problem text is empty.")
    if reasoning is not None:  # a separate thinking field: the content is the final solution
        trace, after = reasoning, completion
    else:
        trace, after = split_think(completion)
        if after is None and THINK_CLOSE not in completion and THINK_OPEN not in completion:
            after = completion  # a plain completion: its answer is in the trace itself
    model = row.get("model") if isinstance(row.get("model"), str) else None
    tokens = row.get("tokens") if isinstance(row.get("tokens"), int) and not isinstance(row.get("tokens"), bool) else None
    trace_id = str(row["trace_id"]) if row.get("trace_id") is not None else None
    return raw_trace_row(
        {"format": RAW_FORMAT, "problem": problem, "answer": gold, "trace": trace, "problem_id": default_id,
         "trace_id": trace_id, "model": model, "tokens": tokens, "final_answer": _answer_of(after)},
        path=path, line=line, default_id=default_id)


def load_raw_traces(path: str | Path) -> list[RawTrace]:
    """Every trace of a JSONL file of any supported export (module docstring), in file order. A trace
    without a `trace_id` gets "<problem_id>#<n>", n counting that problem's traces from 0."""
    traces: list[RawTrace] = []
    per_problem: dict[str, int] = {}
    for number, row in jsonl_rows(path):
        trace = row_to_raw_trace(row, path=path, line=number)
        if isinstance(row, dict) and row.get("trace_id") is None:
            n = per_problem.get(trace.problem_id, 0)
            trace = RawTrace(**{**trace.__dict__, "trace_id": f"{trace.problem_id}#{n}"})
        per_problem[trace.problem_id] = per_problem.get(trace.problem_id, 0) + 1
        traces.append(trace)
    if not traces:
        raise TraceFormatError(f"{path}: no trace found (an empty file?).")
    return check_unique_ids(traces, path)


def analysed_rows_in(path: str | Path) -> list[dict]:
    """The rows of a trace file that are analysed traces already (validated; the others skipped)."""
    return [check_analysed_row(row, path=path, line=number) for number, row in jsonl_rows(path)
            if isinstance(row, dict) and row.get("format") == ANALYSED_FORMAT]
