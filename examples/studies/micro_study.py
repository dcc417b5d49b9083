"""The pre-registered micro-reasoner study (plan: examples/studies/micro_study_plan.md; issue 30):
MRT against outcome-only RL and their SFT counterparts on an LLM that learns on a CPU.

    python examples/studies/micro_study.py --pilot --save-results runs/micro_pilot.json      # the pilot (plan, "Pilot")
    python examples/studies/micro_study.py --save-results runs/micro_study.json --plan-commit C   # the study as planned
    python examples/studies/micro_study.py --from-results runs/micro_study.json             # rewrite the report only
    python examples/studies/micro_study.py --quick --out /tmp/q.md                           # a smoke run (~2 min)

Everything the plan fixes (checkpoint, problem source, methods, seeds, batch, iterations, K, budgets,
held-out set, endpoints, claims and their tests) is a constant of this file, written before any run of
the study. Every run is one `ttc_gym.training.llm_train.train` from the same base checkpoint; run i of
every method shares seed i (training problems, rollout seeds), and every trained policy is evaluated
on the same held-out problems with the same evaluation seeds (common random numbers), so every
comparison is paired by seed. Evaluation: `micro_eval.evaluate` (the trainer's own rollout code, the
policy as its own prover with K forced answers per J), at the training budget H and at 2H.

Results are saved after every run (`--save-results`; an interrupted study resumes from the file) and
the report is made from the saved per-run results only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# -- the plan's tables --------------------------------------------------------------------------------
# (label, trainer algo, overrides). MRT is the paper's recipe (`algo="mrt"`: branches of a prefix
# written by a stale copy of the policy continue or terminate; MRT §4.1/Figure 6, CMU-AIRe/MRT).
METHODS = (
    ("GRPO", "grpo", {}),
    ("MRT", "mrt", {"alpha": 1.0}),
    ("MRT-online", "mrt-online", {"alpha": 1.0}),
    ("STaR", "star", {}),
    ("MRT-STaR", "mrt-star", {}),
)
PILOT_METHODS = ("GRPO", "MRT")


@dataclass(frozen=True)
class Claim:
    """One pre-registered comparison: endpoint of A minus endpoint of B, per seed; `sign` +1 when the
    claim says A is larger, -1 when smaller (two-sided test either way)."""

    name: str
    a: str
    b: str
    endpoint: str
    sign: int
    source: str


CLAIMS = (
    Claim("P1", "MRT", "GRPO", "acc@H", +1, "MRT §6: higher accuracy at the training budget"),
    Claim("P2", "MRT", "GRPO", "regret@H", -1, "MRT §6, Fig. 1: lower cumulative regret"),
    Claim("P3", "MRT", "GRPO", "acc@2H", +1, "MRT §6: extrapolation beyond the training budget"),
    Claim("P4", "MRT", "GRPO", "tokens@H", -1, "MRT §6: token efficiency"),
    Claim("P5", "MRT-STaR", "STaR", "acc@H", +1, "MRT §5: MRT-STaR over STaR"),
    Claim("P6", "MRT-STaR", "STaR", "regret@H", -1, "MRT §5: lower regret"),
    Claim("P7", "MRT-online", "GRPO", "acc@H", +1, "ours: the per-episode on-policy estimator"),
    Claim("P8", "MRT", "MRT-online", "acc@H", +1, "ours: branching (the paper's recipe) vs on-policy credit"),
)
FAMILY_ALPHA = 0.05
ENDPOINTS = ("acc@H", "acc@2H", "regret@H", "regret@2H", "tokens@H", "tokens@2H", "episodes@H")


@dataclass
class Study:
    checkpoint: str = "micro-long"  # engine spec of the base checkpoint
    source: str = "micro:2-3"
    seeds: int = 12
    iterations: int = 100
    problems_per_iter: int = 8
    group_size: int = 4
    lr: float = 1e-4
    temperature: float = 1.0
    max_episode_tokens: int = 48
    H: int = 4
    K: int = 16  # forced answers per J in training
    eval_K: int = 4  # ... and on the held-out set (regret only; accuracy does not depend on it: see the plan)
    alpha: float = 1.0
    eval_problems: int = 500
    eval_group: int = 4
    eval_seed: int = 54321  # the pilot's was 12345: the study's held-out problems are not the ones the pilot looked at
    workers: int = 2
    methods: tuple = tuple(m[0] for m in METHODS)


# The pilot (plan, "Pilot"): the primary pair on 3 seeds, 60 iterations (its learning curves set the
# study's), a fifth of the held-out set; its per-seed spread of MRT - GRPO sets the minimum detectable
# effects the plan states.
PILOT = dict(seeds=3, iterations=60, eval_problems=100, eval_seed=12345, methods=PILOT_METHODS)
QUICK = dict(checkpoint="micro", seeds=2, iterations=2, problems_per_iter=2, group_size=2, K=4, eval_K=2, eval_problems=8,
             eval_group=2)


# -- one run ------------------------------------------------------------------------------------------
def checkpoint_dir(spec: str) -> str:
    """The folder of the base checkpoint (the trainer's `model`): a shipped micro checkpoint's name
    ("micro", "micro-long") or a folder."""
    if Path(spec).is_dir():
        return str(Path(spec).resolve())
    from ttc_gym.micro.checkpoint import micro_checkpoint_dir

    return str(micro_checkpoint_dir(spec))


def endpoints(records, H: int, max_episode_tokens: int) -> dict:
    """A run's endpoints at budget H (plan, "Endpoints") and the per-problem mean outcome."""
    from micro_eval import by_level, summary

    s = summary(records, H, max_episode_tokens)
    per_problem: dict[str, list[float]] = {}
    for r in records:
        per_problem.setdefault(r.problem_id, []).append(r.outcome)
    return {"acc": s["accuracy"], "regret": s["token_regret"], "tokens": s["tokens"], "episodes": s["episodes"],
            "J": s["J"], "by_level": {str(k): float(np.mean([r.outcome for r in rs])) for k, rs in by_level(records).items()},
            "per_problem": [round(float(np.mean(v)), 4) for v in per_problem.values()]}


def evaluate_engine(engine, study: Study, heldout: list) -> dict:
    from micro_eval import evaluate

    out = {}
    for mult in (1, 2):
        budget = mult * study.H
        records = evaluate(engine, heldout, H=budget, G=study.eval_group, temperature=study.temperature, K=study.eval_K,
                           max_episode_tokens=study.max_episode_tokens, seed=study.eval_seed)
        e = endpoints(records, budget, study.max_episode_tokens)
        suffix = "@H" if mult == 1 else "@2H"
        out.update({f"{k}{suffix}": v for k, v in e.items()})
    return out


HISTORY_FIELDS = ("outcome", "progress", "J_0", "J_final", "episodes", "tokens", "entropy", "all_failed_groups",
                  "wall_s")


def job(args) -> dict:
    """Train one method from the base checkpoint with one seed, then evaluate it (in a worker process);
    label None evaluates the base checkpoint itself."""
    import torch

    torch.set_num_threads(1)
    from ttc_gym.engines import make_engine
    from ttc_gym.training.llm_config import LLMTrainConfig
    from micro_eval import heldout_problems
    from ttc_gym.training.llm_train import train

    label, seed, study_dict, tracking = args
    study = Study(**{k: tuple(v) if isinstance(v, list) else v for k, v in study_dict.items()})
    heldout = heldout_problems(study.source, study.eval_problems, study.eval_seed)
    engine = make_engine(study.checkpoint, max_batch_size=64)
    out: dict = {"method": label or "base", "seed": seed, "train_s": 0.0, "history": []}
    if label is not None:
        algo, over = next((a, o) for name, a, o in METHODS if name == label)
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = tmp if tracking["report_to"] == "none" else str(Path(tracking["runs_dir"]) / f"{label}-seed{seed}")
            config = LLMTrainConfig(
                algo=algo, model=checkpoint_dir(study.checkpoint), seed=seed, iterations=study.iterations,
                problems_per_iter=study.problems_per_iter, group_size=study.group_size,
                micro_batch_size=study.problems_per_iter * study.group_size, lr=study.lr,
                temperature=study.temperature, max_episode_tokens=study.max_episode_tokens, max_episodes=study.H,
                num_prover_samples=study.K, source=study.source, out=out_dir, tensorboard=False,
                report_to=tracking["report_to"],
                torch_threads=1, **over)
            result = train(config, policy_engine=engine)
        out["train_s"] = result.wall_s
        out["history"] = [{k: _num(row.get(k)) for k in HISTORY_FIELDS} for row in result.history]
    begin = time.perf_counter()
    out.update(evaluate_engine(engine, study, heldout))
    out["eval_s"] = time.perf_counter() - begin
    return out


def _num(value):
    try:
        return round(float(value), 5)
    except (TypeError, ValueError):
        return None


# -- the study ----------------------------------------------------------------------------------------
def jobs(study: Study, done: set, tracking: dict) -> list:
    todo = [] if ("base", None) in done else [(None, None, asdict(study), tracking)]
    for seed in range(study.seeds):
        for label in study.methods:
            if (label, seed) not in done:
                todo.append((label, seed, asdict(study), tracking))
    return todo


def run(study: Study, save: Path | None, results: dict, log=print, tracking: dict | None = None) -> dict:
    done = {(r["method"], r["seed"]) for r in results["runs"]}
    todo = jobs(study, done, tracking or {"report_to": "none", "runs_dir": "runs/micro_study"})
    log(f"{len(todo)} runs to do ({len(done)} already in the results), {study.workers} workers")
    begin = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(study.workers, maxtasksperchild=1) as pool:
        for out in pool.imap_unordered(job, todo):
            results["runs"].append(out)
            if save is not None:
                save.write_text(json.dumps(results))
            log(f"  {out['method']} seed {out['seed']}: train {out['train_s']:.0f} s, eval {out['eval_s']:.0f} s, "
                f"acc@H {out['acc@H']:.3f}, acc@2H {out['acc@2H']:.3f}  ({(time.perf_counter() - begin) / 60:.1f} min)")
    results["wall_s"] = results.get("wall_s", 0.0) + time.perf_counter() - begin
    if save is not None:
        save.write_text(json.dumps(results))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--pilot", action="store_true", help="the pilot: GRPO and MRT, 3 seeds, 100 held-out problems")
    mode.add_argument("--quick", action="store_true", help="a smoke run of the whole pipeline (tiny settings)")
    p.add_argument("--save-results", default=None, help="results file (JSON); runs already in it are reused")
    p.add_argument("--from-results", default=None, help="only write the report from this results file")
    p.add_argument("--plan-commit", default="", help="the commit of the plan this run follows (named in the report)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the plan's 2)")
    p.add_argument("--report-to", default="none", help="experiment tracking of every training run: tensorboard, "
                   "wandb (offline), none; under --runs-dir/<method>-seed<N>/ (ttc_gym/training/tracking.py); "
                   "changes no result")
    p.add_argument("--runs-dir", default="runs/micro_study", help="where tracked runs write (with --report-to)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="with --pilot or --quick only: change one setting of the pilot (e.g. lr=3e-4), for a "
                   "pilot arm; the study itself runs the plan's constants")
    p.add_argument("--checkpoint", default=None, help="base checkpoint, an engine name or a folder (default: the "
                   "plan's; the pilot ran on a folder holding the same bytes before the checkpoint shipped)")
    p.add_argument("--out", default=None, help="report (markdown); default examples/studies/micro_study.md "
                   "(micro_study_pilot.md with --pilot)")
    args = p.parse_args(argv)
    from micro_study_report import write_report

    if args.from_results:
        blob = json.loads(Path(args.from_results).read_text())
        write_report(Path(args.out or default_out(blob["mode"])), blob, regenerated=True)
        return 0
    mode_name = "pilot" if args.pilot else "quick" if args.quick else "study"
    study = Study()
    if args.pilot:
        study = replace(study, **PILOT)
    if args.quick:
        study = replace(study, **QUICK)
    if args.workers:
        study = replace(study, workers=args.workers)
    if args.checkpoint:
        study = replace(study, checkpoint=args.checkpoint)
    if args.set and not (args.pilot or args.quick):
        p.error("--set changes a pilot's settings; the study runs the plan's constants (edit nothing, or write a new plan)")
    for item in args.set:
        study = replace(study, **parse_setting(item))
    save = Path(args.save_results) if args.save_results else None
    results = {"mode": mode_name, "study": asdict(study), "plan_commit": args.plan_commit, "runs": [], "wall_s": 0.0}
    if save is not None and save.is_file():
        results = json.loads(save.read_text())
        if results["study"] != json.loads(json.dumps(asdict(study))):
            raise SystemExit(f"{save} holds runs of other settings ({results['study']}); use another --save-results.")
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
    import torch

    results["torch"] = torch.__version__
    results = run(study, save, results, tracking={"report_to": args.report_to, "runs_dir": args.runs_dir})
    out = Path(args.out or default_out(mode_name))
    write_report(out, results)
    print(out.read_text())
    return 0


def parse_setting(item: str) -> dict:
    """"lr=3e-4" -> {"lr": 3e-4}, typed as the Study field is (a clear error for an unknown field)."""
    from ttc_gym.validation import unknown_name_error

    key, sep, value = item.partition("=")
    fields = {f: type(v) for f, v in asdict(Study()).items() if not isinstance(v, tuple)}
    if not sep:
        raise SystemExit(f"--set takes FIELD=VALUE, got {item!r}")
    if key not in fields:
        raise SystemExit(str(unknown_name_error("--set field", key, sorted(fields))))
    return {key: fields[key](value)}


def default_out(mode_name: str) -> str:
    return str(HERE / ("micro_study_pilot.md" if mode_name == "pilot" else "micro_study.md"))


if __name__ == "__main__":
    sys.exit(main())
