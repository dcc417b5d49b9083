"""`ttc-gym traces analyze` and `ttc-gym traces collect` (docs/traces.md): the command-line front end
of `ttc_gym.traces`. `collect` writes traces with the LLM agent of TTC-Math-v0
(`ttc_gym.agents.llm.LLMAgent`: the one generation path of the LLM agent)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ttc_gym.prompts import EPISODE_MARKERS, FORCED_ANSWER_FORMS

TRACES_EPILOG = """\
examples:
  ttc-gym traces analyze my_traces.jsonl --engine default --k 8 --out traces_out/
  ttc-gym traces analyze my_traces.jsonl --engine default --k 8 --out traces_out/ --resume
  ttc-gym traces analyze r1.jsonl --engine vllm:deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --forced-answer close_think --out r1_out/
  ttc-gym traces collect --engine default --source procedural:1-2 --n 40 --traces-per-problem 3 --out t.jsonl --analyze
  ttc-gym traces collect --engine micro --source micro:1-2 --n 50 --budget-forcing 4 --out bf.jsonl --analyze

input rows: ttc-gym's raw format {"problem", "answer", "trace"}, a "messages" chat row, or a completion
("<think>...</think> ..." or plain) with its problem and gold answer; see docs/traces.md.
output folder: analysed.jsonl (one analysed trace a line, appended as each batch finishes), summary.json,
table.txt, j_vs_episode.png, j_vs_tokens.png, regret_vs_budget.png, maj_at_k.png, and budget_forcing.png
when the traces were collected with --budget-forcing.
"""


def _prover_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="default", metavar="SPEC",
                   help="prover engine spec (default: %(default)s, the offline SmolLM2-135M; e.g. vllm:MODEL)")
    p.add_argument("--k", type=int, default=8, metavar="K", help="forced answers per prefix (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.7, help="forced answers' temperature (default: %(default)s)")
    p.add_argument("--forced-answer", choices=FORCED_ANSWER_FORMS, default="boxed",
                   help="how the prover answers: boxed (small models) or close_think (reasoning models, MRT's)")
    p.add_argument("--max-answer-tokens", type=int, metavar="N",
                   help="most tokens of one forced answer (default: 24 boxed, 1024 close_think)")
    p.add_argument("--prover-seed", type=int, default=0, help="prover seed (default: %(default)s)")
    p.add_argument("--batch-traces", type=int, default=4, metavar="N",
                   help="traces whose prefixes go to the engine in one call (default: %(default)s)")
    p.add_argument("--segment", choices=("auto", "markers", "given", "paragraphs"), default="auto",
                   help="episodes: the trace's own (given), MRT's marker rules (markers), every paragraph; "
                   "auto = given when the trace has episodes, else markers")
    p.add_argument("--markers", nargs="+", metavar="TEXT", default=list(EPISODE_MARKERS),
                   help="paragraph openers that start an episode (default: MRT's list)")
    p.add_argument("--min-gap", type=int, default=3, metavar="N",
                   help="paragraphs at least between two boundaries (MRT: 3)")
    p.add_argument("--max-pieces", type=int, default=49, metavar="N", help="pieces before the rest is one (MRT R1: 49)")
    p.add_argument("--group-size", type=int, default=5, metavar="N", help="pieces merged into one episode (MRT R1: 5)")
    p.add_argument("--budgets", nargs="+", type=int, metavar="C0",
                   help="token budgets of the regret figure (default: quartiles of the trace lengths)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _analyse(traces: list, out: Path, args: argparse.Namespace, resume: bool, engine: Any = None,
             reuse: list | None = None) -> int:
    from ttc_gym.traces.analyze import Segmentation, analyse_file, make_prover, prover_settings
    from ttc_gym.traces.report import write_report

    segmentation = Segmentation(mode=args.segment, markers=tuple(args.markers), min_gap=args.min_gap,
                                max_pieces=args.max_pieces, group_size=args.group_size)
    settings = dict(k=args.k, temperature=args.temperature, max_answer_tokens=args.max_answer_tokens,
                    forced_answer=args.forced_answer, seed=args.prover_seed)
    info = prover_settings(args.engine, **settings)

    def build_prover():  # loaded only when some trace is left to compute
        return make_prover(engine if engine is not None else args.engine, **settings)

    print(f"ttc-gym traces analyze: {len(traces)} traces, prover {args.engine} K={args.k} -> {out}/", file=sys.stderr)
    try:
        run = analyse_file(traces, out, build_prover, info, segmentation=segmentation, resume=resume,
                           batch_traces=args.batch_traces, progress=not args.no_progress, reuse=reuse or ())
    except KeyboardInterrupt:
        print(f"\nttc-gym traces analyze: interrupted; finished traces are in {out}/analysed.jsonl. "
              f"Rerun with --resume to continue.", file=sys.stderr)
        return 130
    for notice in run.notices:
        print(f"ttc-gym traces analyze: {notice}", file=sys.stderr)
    files = write_report(run.rows, out, budgets=args.budgets, plots=not args.no_plots)
    print((out / "table.txt").read_text(), end="")
    print(f"analysed {run.computed} traces ({len(run.rows) - run.computed} already done) in {run.elapsed_s:.1f}s; "
          f"wrote {out}/: analysed.jsonl, {', '.join(sorted(files))}", file=sys.stderr)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from ttc_gym.folder_lock import OutputFolderBusy
    from ttc_gym.traces.format import TraceFormatError
    from ttc_gym.traces.loaders import analysed_rows_in, load_raw_traces

    try:
        traces = load_raw_traces(args.file)
        return _analyse(traces, Path(args.out), args, args.resume, reuse=analysed_rows_in(args.file))
    except (TraceFormatError, OSError, ValueError, TypeError, OutputFolderBusy) as err:  # OSError: a model not found
        print(f"ttc-gym traces analyze: error: {err}", file=sys.stderr)
        return 2


def cmd_collect(args: argparse.Namespace) -> int:
    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines.registry import make_engine
    from ttc_gym.traces.collect import collect_traces, draw_problems, write_raw_traces

    out = Path(args.out)
    try:
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
        problems = draw_problems(args.source, args.n, args.seed)
        engine = make_engine(args.engine)
        agent = LLMAgent(engine, max_episode_tokens=args.episode_tokens, temperature=args.episode_temperature,
                         seed=args.seed)
        print(f"ttc-gym traces collect: {args.n} problems x {args.traces_per_problem} traces with {args.engine} "
              f"on {args.source} -> {out}", file=sys.stderr)
        traces = collect_traces(agent, problems, traces_per_problem=args.traces_per_problem,
                                max_episodes=args.max_episodes, seed=args.seed, model=args.model or str(args.engine),
                                progress=not args.no_progress, budget_forcing=args.budget_forcing)
        write_raw_traces(traces, out)
        print(f"wrote {len(traces)} traces to {out}", file=sys.stderr)
        if args.analyze:
            analysis = out.with_name(out.stem + "_analysis")
            return _analyse(traces, analysis, args, resume=True, engine=engine)
        return 0
    except (OSError, ValueError, TypeError) as err:  # OSError: files, and a model not found
        print(f"ttc-gym traces collect: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nttc-gym traces collect: interrupted; nothing written.", file=sys.stderr)
        return 130


def add_traces_parser(sub: Any) -> None:
    """The `traces` command group (`analyze`, `collect`) on an argparse subparsers object."""
    p = sub.add_parser("traces", help="reasoning traces: J per prefix and MRT's figures (analyze), write traces (collect)",
                       description="MRT's trace analysis on traces any model wrote (docs/traces.md).",
                       epilog=TRACES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_subparsers(dest="traces_command", metavar="{analyze,collect}")
    a = group.add_parser("analyze", help="J after every prefix of every trace; figures, summary, table",
                         epilog=TRACES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("file", metavar="FILE", help="JSONL of traces (docs/traces.md)")
    a.add_argument("--out", required=True, metavar="DIR", help="output folder")
    a.add_argument("--resume", action="store_true", help="continue DIR/analysed.jsonl, recomputing nothing finished")
    _prover_arguments(a)
    a.set_defaults(func=cmd_analyze)
    c = group.add_parser("collect", help="write traces with an engine on a problem source (optionally analyse them)",
                         epilog=TRACES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--source", default="procedural", metavar="SPEC",
                   help="problem source spec (default: %(default)s; e.g. procedural:1-2, a JSONL file, hf:NAME)")
    c.add_argument("--n", type=int, default=20, metavar="N", help="problems (default: %(default)s)")
    c.add_argument("--traces-per-problem", type=int, default=2, metavar="M", help="traces per problem (default: %(default)s)")
    c.add_argument("--max-episodes", type=int, default=6, metavar="H", help="most episodes per trace (default: %(default)s)")
    c.add_argument("--episode-tokens", type=int, default=64, metavar="N", help="most tokens per episode (default: %(default)s)")
    c.add_argument("--episode-temperature", type=float, default=0.7, help="episodes' temperature (default: %(default)s)")
    c.add_argument("--budget-forcing", type=int, default=0, metavar="W",
                   help="after a trace ends, force it on W times, each with one episode opened by \"Wait\", "
                   "\"But wait\", \"Alternatively\", \"But hold on\" in turn (MRT's extrapolation, s1); the "
                   "analysis then shows J after each (default: %(default)s, none)")
    c.add_argument("--seed", type=int, default=0, help="problems and trace seeds (default: %(default)s)")
    c.add_argument("--model", metavar="NAME", help="model name written in the traces (default: the engine spec)")
    c.add_argument("--out", required=True, metavar="FILE", help="output JSONL of raw traces")
    c.add_argument("--overwrite", action="store_true", help="replace FILE when it exists")
    c.add_argument("--analyze", action="store_true", help="then analyse them into FILE_analysis/ (prover: the same engine)")
    _prover_arguments(c)
    c.set_defaults(func=cmd_collect)

    def _group_help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_group_help)
