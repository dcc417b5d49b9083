"""The benchmark runner: agents x budgets x problems on one env, with seeds.

Problem i is `env.reset(seed=base_seed + i)` for every agent and budget, so all agents face the same
problems and differences between them can be tested pairwise; the agent is reset with the same seed
(`ttc_gym.agent.Agent`), so a stochastic agent's actions on problem i do not depend on what ran before. Every finished problem is appended to
`results.jsonl` at once (a killed run loses nothing; `resume=True` skips what is there), then the
summary, table and plots are made from that file alone. One run at a time writes an output folder
(`folder_lock`); each record names the env and env kwargs it was made with, so a resumed run continues
only its own configuration's results (`run_identity`); damaged lines are skipped and recomputed
(`results_file`).

Work goes through an *executor*: `executor(items, evaluate) -> iterable of records`, serial by default.
`evaluate` is an `ItemEvaluator`, picklable (it rebuilds its envs and agents lazily wherever it runs), so
an executor may ship items to worker processes or Ray actors and yield records as they finish, in any
order; nothing else changes.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from ttc_gym.errors import TTCGymError
from ttc_gym.bench.folder_lock import FolderLock, describe_holder
from ttc_gym.bench.results_file import (
    RESULTS_FILE,
    ResultsWriter,
    read_results,
    repair_results,
)
from ttc_gym.bench.run_identity import (
    CONFIG_FILE,
)
from ttc_gym.jsonl_log import move_to_backup
from ttc_gym.bench.comparators import comparators
from ttc_gym.bench.config import BenchConfig, OUTPUT_FILES, TABLE_FILE
from ttc_gym.bench.evaluator import Executor, ItemEvaluator, serial_executor
from ttc_gym.bench.plan import BenchPlan, check_folder_state, json_default, prepare



# ----------------------------------------------------------------------------------------------------
# The run


class OutputNotWritten(TTCGymError, OSError):
    """Writing to the output folder failed (a full disk, a file made read-only): the message says what is
    saved and how to continue; `errno` is the cause's."""

    exit_code = 1

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _why(err: OSError) -> str:
    return f"{err.strerror or err}" + (f" (errno {err.errno})" if err.errno else "")


@dataclass
class BenchResult:
    plan: BenchPlan
    summary: dict
    files: dict[str, Path]
    computed: int  # problems evaluated by this call (the rest came from results.jsonl)
    elapsed_s: float
    notices: list = field(default_factory=list)  # what run_bench told the user (one line each)


def run_bench(
    config: BenchConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    executor: Executor = serial_executor,
    progress: bool = True,
    plots: bool = True,
    console: Any = None,
    notify: Callable[[str], None] | None = None,
) -> BenchResult:
    """Validate, evaluate what is not in `results.jsonl` yet, then write summary.json/.csv, table.txt
    and the plots, print the table, and return the summary. The output folder is locked for the run
    (`ttc_gym.bench.folder_lock`): a second run on it raises `OutputFolderBusy` at once.

    With `overwrite`, the old results.jsonl and bench_config.json are kept as backups (`NAME.bak-DATE`).
    With `resume`, damaged lines of results.jsonl (cut short, not JSON, not a complete record) are
    skipped and their problems computed again. `notify(line)` gets one line per such finding (default:
    printed to stderr); `BenchResult.notices` holds them too."""
    start = time.perf_counter()
    notices: list[str] = []

    def say(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)
        else:
            print(f"ttc-gym bench: notice: {message}", file=sys.stderr)

    plan = prepare(config, resume=resume, overwrite=overwrite)
    with FolderLock(plan.out_dir) as lock:  # one run per output folder, until this one ends
        if lock.stale_holder is not None:
            say(f"{plan.out_dir}: took over the lock of {describe_holder(lock.stale_holder)}, a bench that ended "
                f"without releasing it (killed?).")
        check_folder_state(plan, resume=resume, overwrite=overwrite)  # again, now that no one else writes
        return _run_locked(plan, overwrite=overwrite, executor=executor, progress=progress, plots=plots,
                           console=console, say=say, notices=notices, start=start)


def _run_locked(
    plan: BenchPlan, *, overwrite: bool, executor: Executor, progress: bool, plots: bool, console: Any,
    say: Callable[[str], None], notices: list, start: float,
) -> BenchResult:
    """`run_bench` once the output folder is this process's: evaluate, write, summarize."""
    from ttc_gym.bench.report import print_table, summarize_results, write_summary

    out = plan.out_dir
    results_path = out / RESULTS_FILE
    items = plan.work_items()
    total = len(items)
    todo = [item for item in items if item.key not in plan.done]
    resume_hint = "rerun with resume (ttc-gym bench --resume) to continue"

    def not_written(what: str, err: OSError, saved: int, computed: int = 0) -> OutputNotWritten:
        by_this_run = f" ({computed} by this run)" if computed else ""
        return OutputNotWritten(
            f"cannot write {what}: {_why(err)}. {saved} of {total} problems are saved in {results_path}"
            f"{by_this_run}; free some disk space or make {out} writable, then {resume_hint}.", err.errno,
        )

    try:
        if overwrite:
            kept = [move_to_backup(out / name) for name in (RESULTS_FILE, CONFIG_FILE)]
            for name in OUTPUT_FILES:  # ours only: the folder may hold other things
                if (out / name).is_file():
                    (out / name).unlink()
            if kept[0] is not None:
                also = f" (and {kept[1].name})" if kept[1] is not None else ""
                say(f"starting over: the previous results are kept as {kept[0]}{also}.")
        for message in plan.notices:
            say(message)
        read = read_results(results_path)
        backup = repair_results(results_path, read)  # cut a torn last line off, drop damaged lines
        if read.damaged:
            say(read.notice(results_path, backup=backup))
        comps = comparators(plan)
        (out / CONFIG_FILE).write_text(json.dumps({"config": plan.identity(), "comparators": comps}, indent=2) + "\n")
    except OSError as err:
        raise not_written(str(err.filename or out / CONFIG_FILE), err, total - len(todo)) from err

    evaluator = ItemEvaluator(plan.env_id, plan.env_kwargs, plan.agents, plan.budgets)
    computed = 0
    if todo:
        from tqdm.auto import tqdm

        try:
            writer = ResultsWriter(results_path)
        except OSError as err:
            raise not_written(str(results_path), err, total - len(todo)) from err
        with writer, tqdm(
            total=len(todo), desc=f"bench {plan.env_id}", unit="problem", disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            evaluator.on_event = bar.write if progress else None
            for record in executor(todo, evaluator):
                try:
                    writer.append(json.dumps(record, default=json_default) + "\n")
                except OSError as err:
                    raise not_written(str(results_path), err, total - len(todo) + computed, computed) from err
                computed += 1
                bar.set_postfix_str(f"{record['agent']} {record['budget']}", refresh=False)
                bar.update(1)

    records = read_results(results_path).records
    summary = summarize_results(
        records, agents=[a.text for a in plan.agents], budgets=comps, num_problems=plan.num_problems,
        base_seed=plan.base_seed, rank_by=plan.rank_by, env_id=plan.env_id, note=plan.profile.note,
    )
    files = {"results": results_path, "config": out / CONFIG_FILE}
    try:
        files.update(write_summary(summary, out))
        files["table"] = print_table(summary, console=console, path=out / TABLE_FILE)
        if plots:
            from ttc_gym.bench.plots import make_plots

            files.update(make_plots(summary, out))
    except OSError as err:
        raise OutputNotWritten(
            f"all {total} problems are saved in {results_path}, but writing {err.filename or 'the summary'} "
            f"failed: {_why(err)}; free some disk space or make {out} writable, then rerun with resume "
            f"(ttc-gym bench --resume) to write the summary, table and plots.", err.errno,
        ) from err
    return BenchResult(plan, summary, files, computed, time.perf_counter() - start, notices)
