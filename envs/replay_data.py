"""The analysed trace set TTC-Replay-v0 replays: read, checked, and turned into decision points.

An analysed trace (format "ttc-gym/analysed-trace/v1", defined and checked in
`ttc_gym.traces.format`, documented in docs/traces.md) is one reasoning trace of one problem split
into episodes, with the prover's K forced answers, their grades and J after every prefix
(docs/formulation.md §2, §6); the traces of one problem share its `problem_id` (and must agree on its
`problem` and `answer`). The env reads the episodes' token counts, and per prefix the forced answers,
their grades and J. A bad row raises `ttc_gym.traces.TraceFormatError` naming the file and line (or
"data rows" and the row's index), the field, what was expected and what came; a set whose rows do not
fit together raises `ReplayDataError` (a subclass).

**Ungraded prefixes (null).** A prefix whose J is null was not graded, and is never taken as wrong:

- an ungraded prefix j (0 < j) is *skipped*: it is no decision point, and the step that reveals
  episode j also reveals the episodes up to the next graded prefix (one env step, their tokens
  summed); ungraded prefixes at the end of a trace are dropped with their episodes (the trace then
  ends at its last graded prefix);
- an ungraded empty prefix (j = 0) borrows J and the forced answers of the empty prefix of a sibling
  trace (the empty prefix is the same prompt for every trace of a problem); a problem none of whose
  traces has a graded empty prefix is left out and listed in `ReplayData.skipped` with the reason;
- within a graded prefix, a forced answer whose grade is null is shown (it is in the observation's
  agreement, which is gold-free) but never committed: `answer` samples among the graded ones, so the
  probability of a correct committed answer is `p_correct` = (# true) / (# graded), which is J (the
  format's J is the mean of the graded `correct` values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ttc_gym.metrics import answer_agreement, majority_vote
from ttc_gym.seeding import text_seed
from ttc_gym.traces.format import ANALYSED_FORMAT as FORMAT
from ttc_gym.traces.format import TraceFormatError, check_analysed_row, jsonl_rows
from ttc_gym.validation import check_float

SPLITS = ("all", "train", "test")


class ReplayDataError(TraceFormatError):
    """An analysed trace set that cannot be replayed as a whole (each row fits the format, but the set
    does not: two rows of one problem disagree on it, no problem can start); the message names where."""


@dataclass(frozen=True)
class ReplayPoint:
    """One decision point of a trace: a graded prefix.

    `episodes`: stored episodes in the prefix; `tokens`: their tokens (stored counts, summed);
    `j`: the stored J; `answers`: the K forced answers (gold-free); `graded`: the indices of the
    answers with a grade; `correct`: the grade of each answer (None = ungraded); `p_correct`: the
    probability that an answer committed here is correct; `agreement` / `majority`: the gold-free
    agreement count and most common answer (`ttc_gym.metrics.answer_agreement` times K, and
    `majority_vote` of the non-empty answers), as TTC-MathMeta-v0 observes them.
    """

    episodes: int
    tokens: int
    j: float
    answers: tuple[str | None, ...]
    correct: tuple[bool | None, ...]
    graded: tuple[int, ...]
    p_correct: float
    agreement: int
    majority: str | None


@dataclass(frozen=True)
class ReplayTrace:
    """One stored trace: its decision points, `points[0]` the empty prefix, `points[-1]` where it ends."""

    trace_id: str
    model: str | None
    points: tuple[ReplayPoint, ...]
    episode_texts: tuple[str, ...]
    where: str  # file and line (or row) it came from, for messages


@dataclass(frozen=True)
class ReplayProblem:
    problem_id: str
    question: str
    answer: str
    traces: tuple[ReplayTrace, ...]


@dataclass(frozen=True)
class ReplayData:
    """The problems of an analysed trace set, in first-seen order, with the null rule applied.

    `source`: where they came from; `skipped`: (problem_id, reason) of the problems left out;
    `num_answers`: the largest K of any prefix; `mean_episode_tokens`: mean tokens of a stored
    episode over the whole set (before any split; at least 1).
    """

    problems: tuple[ReplayProblem, ...]
    source: str
    skipped: tuple[tuple[str, str], ...] = ()
    num_answers: int = 1
    mean_episode_tokens: float = 1.0

    def problem(self, problem_id: str) -> ReplayProblem:
        for p in self.problems:
            if p.problem_id == problem_id:
                return p
        ids = [p.problem_id for p in self.problems]
        shown = ", ".join(map(repr, ids[:10])) + (", ..." if len(ids) > 10 else "")
        raise KeyError(f"problem_id {problem_id!r} is not in this trace set ({len(ids)} problems: {shown}).")

    def select(self, split: str = "all", *, test_fraction: float = 0.3, split_seed: int = 0,
               problems: Sequence[str] | None = None) -> "ReplayData":
        """The problems of one split (`split_of`), then only those named in `problems` (if given)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        kept = [p for p in self.problems
                if split == "all" or split_of(p.problem_id, test_fraction, split_seed) == split]
        if problems is not None:
            if isinstance(problems, str) or not all(isinstance(x, str) for x in problems):
                raise TypeError(f"problems must be a list of problem_id strings, got {problems!r:.200}.")
            known = {p.problem_id for p in self.problems}
            unknown = [x for x in problems if x not in known]
            if unknown:
                raise ValueError(f"problems names ids not in the trace set {self.source}: {unknown[:10]}.")
            wanted = set(problems)
            kept = [p for p in kept if p.problem_id in wanted]
        if not kept:
            raise ValueError(
                f"no problem of {self.source} is left for split={split!r} (test_fraction={test_fraction}, "
                f"split_seed={split_seed}) and problems={problems!r}: of {len(self.problems)} problems, "
                f"{sum(split_of(p.problem_id, test_fraction, split_seed) == 'test' for p in self.problems)} "
                f"are in the test split."
            )
        return ReplayData(tuple(kept), self.source, self.skipped, self.num_answers, self.mean_episode_tokens)


def split_of(problem_id: str, test_fraction: float = 0.3, split_seed: int = 0) -> str:
    """"test" or "train": a deterministic split by a hash of the problem id (and `split_seed`), the
    same in every process and whatever order or set of problems a file holds: a problem is in the
    test split when `text_seed` of the id, as a fraction of 2^63, is below `test_fraction`."""
    test_fraction = check_float("test_fraction", test_fraction, minimum=0.0, maximum=1.0)
    u = text_seed(f"ttc-gym/replay-split\x00{int(split_seed)}\x00{problem_id}") / 2.0**63
    return "test" if u < test_fraction else "train"


# ---- reading ----------------------------------------------------------------------------------------

def load_replay_data(data: Any) -> ReplayData:
    """The trace set of `data`: a path to a JSONL file (str or PathLike), or a list of row dicts. Each row
    is checked by the format's own check (`ttc_gym.traces.format.check_analysed_row`: an error names the
    file and line, or "data rows" and the row's index, and the field)."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"analysed trace file {str(path)!r} does not exist (expected a JSONL file "
                                    f"of {FORMAT} rows).")
        rows = [(path, number, row) for number, row in jsonl_rows(path)]
        return build_replay_data(rows, str(path))
    if isinstance(data, (list, tuple)):
        return build_replay_data([("data rows", i, row) for i, row in enumerate(data)], "data rows")
    raise TypeError(f"data must be a path to a JSONL file of analysed traces or a list of row dicts, got "
                    f"{type(data).__name__}: {data!r:.80}.")


def build_replay_data(rows: Iterable[tuple[Any, int, Any]], source: str) -> ReplayData:
    """Check every (path, line, row) and group the traces by problem (see the module docstring)."""
    grouped: dict[str, list] = {}
    meta: dict[str, tuple[str, str, str]] = {}
    k_max, episode_tokens, episode_count = 1, 0, 0
    for path, line, row in rows:
        check_analysed_row(row, path=path, line=line)
        where = f"{path}:{line}"
        pid = row["problem_id"]
        if pid in meta:
            question, answer, first = meta[pid]
            if (row["problem"], row["answer"]) != (question, answer):
                raise ReplayDataError(f"{where}: problem_id {pid!r} has another problem or answer than on {first}.")
            if any(t["trace_id"] == row["trace_id"] for t, _ in grouped[pid]):
                raise ReplayDataError(f"{where}: trace_id {row['trace_id']!r} of problem {pid!r} appears twice.")
        else:
            meta[pid] = (row["problem"], row["answer"], where)
            grouped[pid] = []
        grouped[pid].append((row, where))
        k_max = max([k_max] + [len(p["forced_answers"]) for p in row["prefixes"]])
        episode_tokens += sum(e["tokens"] for e in row["episodes"])
        episode_count += len(row["episodes"])
    if not grouped:
        raise ReplayDataError(f"{source} holds no analysed trace (expected JSON rows of format {FORMAT!r}).")
    problems, skipped = [], []
    for pid, traces in grouped.items():
        start = next((t["prefixes"][0] for t, _ in traces if t["prefixes"][0]["J"] is not None), None)
        if start is None:
            skipped.append((pid, "no trace has a graded empty prefix (J null at n_episodes 0)"))
            continue
        question, answer, _ = meta[pid]
        problems.append(ReplayProblem(pid, question, answer, tuple(_trace(t, where, start) for t, where in traces)))
    if not problems:
        raise ReplayDataError(f"{source}: no problem has a graded empty prefix (every J at n_episodes 0 is null).")
    mean_tokens = max(1.0, episode_tokens / episode_count) if episode_count else 1.0
    return ReplayData(tuple(problems), source, tuple(skipped), k_max, mean_tokens)


def _trace(row: dict, where: str, start: dict) -> ReplayTrace:
    """The decision points of one checked row: graded prefixes only (the null rule)."""
    prefixes = row["prefixes"]
    first = prefixes[0] if prefixes[0]["J"] is not None else start
    points = [_point(first, 0, 0)]
    tokens = 0
    for j in range(1, len(prefixes)):
        tokens += row["episodes"][j - 1]["tokens"]
        if prefixes[j]["J"] is not None:
            points.append(_point(prefixes[j], j, tokens))
    texts = tuple(e["text"] for e in row["episodes"][: points[-1].episodes])
    return ReplayTrace(row["trace_id"], row.get("model"), tuple(points), texts, where)


def _point(prefix: dict, episodes: int, tokens: int) -> ReplayPoint:
    answers, correct = tuple(prefix["forced_answers"]), tuple(prefix["correct"])
    graded = tuple(i for i, c in enumerate(correct) if c is not None)
    p_correct = sum(1 for i in graded if correct[i]) / len(graded)
    agreement = round(answer_agreement(answers) * len(answers))
    majority = majority_vote([a for a in answers if a])
    return ReplayPoint(episodes, tokens, float(prefix["J"]), answers, correct, graded, p_correct, agreement, majority)
