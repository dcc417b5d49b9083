"""J after every prefix of every trace: raw traces in, analysed traces out (docs/traces.md).

Each trace is split into episodes (`ttc_gym.traces.segment`, MRT's rules, or the episodes the trace
came with), and for every prefix j = 0..n the prover — any engine, through the one LLM prover
`ttc_gym.llm_prover.LLMProver` — samples K forced answers, which are graded against the gold answer;
J is the fraction correct (docs/formulation.md §2). The prefixes of several traces go to the engine
in one batched call.

Finished traces are appended, one line each, to `analysed.jsonl` in the output folder as soon as
their batch is done (written and synced), so a killed run loses at most the batch in flight. The file
is an append-only JSONL log (`ttc_gym.jsonl_log`): `resume=True` reads it, keeps every complete valid
row, cuts a torn last line off, drops damaged lines in the middle (after a backup of the original),
and computes only the traces not yet in it. A run made with another prover setting refuses to mix
into the file.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ttc_gym.grading import compare_answers, normalize_answer
from ttc_gym.folder_lock import FolderLock
from ttc_gym.jsonl_log import JsonlAppender, LogRead, read_jsonl_log, repair_jsonl_log
from ttc_gym.llm_prover import LLMProver
from ttc_gym.prompts import EPISODE_MARKERS, PromptTemplate
from ttc_gym.traces.format import ANALYSED_FORMAT, RawTrace, TraceFormatError, check_analysed_row
from ttc_gym.traces.segment import MRT_GROUP_SIZE, MRT_MAX_PIECES, MRT_MIN_GAP, segment_trace
from ttc_gym.validation import check_int, check_temperature

ANALYSED_FILE = "analysed.jsonl"
SEGMENT_MODES = ("auto", "markers", "given", "paragraphs")


@dataclass(frozen=True)
class Segmentation:
    """How a raw trace becomes episodes.

    mode: "markers" (MRT's rules, `segment_trace`), "given" (the trace's own `episodes`, e.g. from
        `ttc-gym traces collect`), "paragraphs" (every paragraph an episode), or "auto" (default:
        "given" when the trace has episodes, else "markers").
    markers, min_gap, max_pieces, group_size: `segment_trace`'s arguments (MRT's R1 notebook's by default).
    """

    mode: str = "auto"
    markers: tuple[str, ...] = EPISODE_MARKERS
    min_gap: int = MRT_MIN_GAP
    max_pieces: int = MRT_MAX_PIECES
    group_size: int = MRT_GROUP_SIZE

    def __post_init__(self) -> None:
        if self.mode not in SEGMENT_MODES:
            raise ValueError(f"segmentation mode must be one of {SEGMENT_MODES}, got {self.mode!r}.")
        object.__setattr__(self, "markers", tuple(self.markers))
        check_int("min_gap", self.min_gap, minimum=1)
        check_int("max_pieces", self.max_pieces, minimum=1)
        check_int("group_size", self.group_size, minimum=1)

    def episodes(self, trace: RawTrace) -> tuple[list[str], str]:
        """(the trace's episodes, the mode used)."""
        mode = self.mode
        if mode == "auto":
            mode = "given" if trace.episodes is not None else "markers"
        if mode == "given":
            if trace.episodes is None:
                raise TraceFormatError(f"trace {trace.trace_id!r} has no 'episodes' field; segmentation 'given' needs "
                                       "one (use 'markers' or 'auto').")
            return [e for e in trace.episodes], mode
        if mode == "paragraphs":
            return [p.strip("\n") for p in trace.trace.split("\n\n") if p.strip()], mode
        return segment_trace(trace.trace, self.markers, min_gap=self.min_gap, max_pieces=self.max_pieces,
                             group_size=self.group_size), mode

    def describe(self) -> dict:
        return {"mode": self.mode, "markers": list(self.markers), "min_gap": self.min_gap,
                "max_pieces": self.max_pieces, "group_size": self.group_size}


def prover_record(engine_spec: str, prover: LLMProver) -> dict:
    """The analysed format's `prover` field (plus the sampling settings that make J reproducible)."""
    return {"engine": str(engine_spec), "k": prover.num_samples, "max_new_tokens": prover.max_answer_tokens,
            "template": prover.template.forced_answer, "temperature": prover.temperature, "seed": prover.seed}


def prover_settings(engine_spec: str, *, k: int = 8, temperature: float = 0.7, max_answer_tokens: int | None = None,
                    forced_answer: str = "boxed", seed: int = 0) -> dict:
    """`prover_record` of the prover `make_prover` would build, without loading its engine."""
    template = PromptTemplate(forced_answer=forced_answer)
    return {"engine": str(engine_spec), "k": check_int("k", k, minimum=1),
            "max_new_tokens": template.answer_tokens if max_answer_tokens is None else max_answer_tokens,
            "template": forced_answer, "temperature": check_temperature("temperature", temperature), "seed": seed}


def make_prover(engine: Any, *, k: int = 8, temperature: float = 0.7, max_answer_tokens: int | None = None,
                forced_answer: str = "boxed", seed: int = 0) -> LLMProver:
    """The LLM prover of an analysis: K forced answers per prefix from `engine` (an Engine or spec),
    in the template's `forced_answer` form ("boxed", or "close_think" for reasoning models)."""
    from ttc_gym.engines.registry import make_engine

    return LLMProver(make_engine(engine), num_samples=k, temperature=temperature, max_answer_tokens=max_answer_tokens,
                     template=PromptTemplate(forced_answer=forced_answer), seed=seed)


def _problem(trace: RawTrace):
    from ttc_gym.problems import Problem

    return Problem(id=trace.problem_id, question=trace.problem, answer=trace.answer, source="traces")


def _grade_final(answer: str | None, gold: str) -> bool | None:
    if answer is None or not answer.strip():
        return None
    return compare_answers(normalize_answer(answer), gold)


def analyse_traces(traces: Sequence[RawTrace], prover: LLMProver, prover_info: dict,
                   segmentation: Segmentation = Segmentation()) -> list[dict]:
    """Analysed rows (the v1 format) of `traces`: every prefix of every trace estimated in one
    `LLMProver.estimate_many` call. Episode tokens are the trace's own counts when it has them, else
    counted with the prover engine's tokenizer."""
    engine = prover.engine
    plans = []
    for trace in traces:
        episodes, mode = segmentation.episodes(trace)
        if trace.episode_tokens is not None and mode == "given":
            tokens = list(trace.episode_tokens)
        else:
            tokens = [engine.count_tokens(e) for e in episodes]
        plans.append((trace, _problem(trace), episodes, tokens, mode))
    items = [(problem, episodes[:j]) for _, problem, episodes, _, _ in plans for j in range(len(episodes) + 1)]
    before = prover.grading_incomplete
    estimates = iter(prover.estimate_many(items))
    unsure = prover.grading_incomplete > before  # some grade is unknown: find which, below
    rows = []
    for trace, problem, episodes, tokens, mode in plans:
        prefixes, total = [], 0
        for j in range(len(episodes) + 1):
            estimate = next(estimates)
            total += tokens[j - 1] if j else 0
            answers = [a if a else None for a in estimate.answers]
            correct: list[bool | None] = [bool(c) for c in estimate.correct]
            if unsure:
                correct = [False if a is None else compare_answers(a, trace.answer) for a in answers]
            graded = [c for c in correct if c is not None]
            prefixes.append({
                "n_episodes": j, "tokens": total, "forced_answers": answers, "correct": correct,
                "J": (sum(graded) / len(graded)) if graded else None,
                "answer_tokens": estimate.answer_tokens,  # mean generated length of the K forced answers
            })
        row = {
            "format": ANALYSED_FORMAT, "problem_id": trace.problem_id, "problem": trace.problem, "answer": trace.answer,
            "trace_id": trace.trace_id, "model": trace.model,
            "episodes": [{"text": e, "tokens": t} for e, t in zip(episodes, tokens)],
            "prefixes": prefixes, "prover": prover_info,
            "final_answer": trace.final_answer, "final_correct": _grade_final(trace.final_answer, trace.answer),
            "problem_tokens": engine.count_tokens(trace.problem), "segmentation": {**segmentation.describe(), "used": mode},
        }
        if trace.natural_episodes is not None and mode == "given":  # budget forcing: where it began
            row["natural_episodes"] = trace.natural_episodes
        rows.append(check_analysed_row(row))
    return rows


# ----------------------------------------------------------------------------- the resumable file
def _analysed_row_problem(row: Any) -> str | None:
    """Why a parsed line is not a valid analysed row (`check_analysed_row`'s message), or None."""
    try:
        check_analysed_row(row)
    except TraceFormatError as err:
        return str(err)
    return None


def read_analysed_file(path: Path) -> LogRead:
    """The complete analysed rows (`records`) of an output file; a line cut short, not JSON or not a
    valid row is skipped and counted (`ttc_gym.jsonl_log.read_jsonl_log`; never raises for what the
    file holds)."""
    return read_jsonl_log(path, _analysed_row_problem)


@dataclass
class AnalysisRun:
    """What `analyse_file` did: every analysed row (old and new), how many were computed now, the file."""

    rows: list[dict]
    computed: int
    path: Path
    elapsed_s: float
    notices: list[str] = field(default_factory=list)


def _same_prover(a: dict, b: dict) -> bool:
    keys = ("engine", "k", "max_new_tokens", "template", "temperature", "seed")
    return all(a.get(k) == b.get(k) for k in keys)


def analyse_file(traces: Sequence[RawTrace], out_dir: str | Path, prover: LLMProver | Callable[[], LLMProver],
                 prover_info: dict, *, segmentation: Segmentation = Segmentation(), resume: bool = False,
                 batch_traces: int = 4, progress: bool = True, reuse: Sequence[dict] = ()) -> AnalysisRun:
    """Analyse `traces` into `out_dir/analysed.jsonl` (module docstring): batches of `batch_traces`
    traces, each appended when done. Without `resume` an existing non-empty file is an error; with
    it, finished traces (by trace_id) are skipped. `reuse`: analysed rows (e.g. the input file was
    analysed already) taken as finished when their prover is `prover_info`'s, written to the file
    without any computation. `prover` may be a function that builds it: it is called only when some
    trace is left to compute (so a report of finished rows loads no model)."""
    check_int("batch_traces", batch_traces, minimum=1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, what="ttc-gym traces analyze"):  # one analysis per folder at a time
        return _analyse_locked(traces, out, prover, prover_info, segmentation, resume, batch_traces, progress,
                               reuse)


def _analyse_locked(traces: Sequence[RawTrace], out: Path, prover: LLMProver | Callable[[], LLMProver],
                    prover_info: dict, segmentation: Segmentation, resume: bool, batch_traces: int,
                    progress: bool, reuse: Sequence[dict]) -> AnalysisRun:
    path = out / ANALYSED_FILE
    notices: list[str] = []
    found = read_analysed_file(path)
    if path.exists() and path.stat().st_size and not resume:
        raise FileExistsError(f"{path} exists ({len(found.records)} traces analysed); pass --resume to continue it, "
                              f"or choose another --out.")
    for row in found.records:
        if not _same_prover(row["prover"], prover_info):
            raise ValueError(f"{path}: trace {row['trace_id']!r} was analysed with prover {row['prover']} but this run "
                             f"uses {prover_info}; choose another --out to analyse with another prover.")
    if found.damaged:
        backup = repair_jsonl_log(path, found)  # a torn last line cut off, damaged lines dropped
        notices.append(found.notice(path, unit="trace", backup=backup))
    wanted = {t.trace_id for t in traces}
    done = {row["trace_id"]: row for row in found.records if row["trace_id"] in wanted}
    carried = [row for row in reuse if row["trace_id"] in wanted and row["trace_id"] not in done
               and _same_prover(row["prover"], prover_info)]
    if carried:
        with JsonlAppender(path) as log:
            log.append_many([json.dumps(r, ensure_ascii=False) + "\n" for r in carried], sync=True)
        done.update((r["trace_id"], r) for r in carried)
        notices.append(f"reused {len(carried)} trace(s) analysed with this prover in the input file.")
    todo = [t for t in traces if t.trace_id not in done]
    if todo and not isinstance(prover, LLMProver):
        prover = prover()
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(traces), initial=len(traces) - len(todo), desc="traces analysed", unit="trace",
                   file=sys.stderr, dynamic_ncols=True)
    new_rows: dict[str, dict] = {}
    try:
        with JsonlAppender(path) as log:
            for i in range(0, len(todo), batch_traces):
                batch = todo[i:i + batch_traces]
                rows = analyse_traces(batch, prover, prover_info, segmentation)
                log.append_many([json.dumps(r, ensure_ascii=False) + "\n" for r in rows], sync=True)
                new_rows.update((r["trace_id"], r) for r in rows)
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    rows = [done.get(t.trace_id) or new_rows[t.trace_id] for t in traces]
    return AnalysisRun(rows=rows, computed=len(new_rows), path=path, elapsed_s=time.perf_counter() - start,
                       notices=notices)
