"""Rerun the hostile probe's reproductions of issue 33 (reliability, round three) on the installed
package: each must give the right result or a clear one-line error, never a wrong verdict, a deep
traceback, a crash or a hang. Prints one line per reproduction (PASS/FAIL, what came) and exits 1
if any failed.

    python examples/studies/reliability_probe.py

Each check runs the probe's input as a user would (the Python API, or the `ttc-gym` command line in a
subprocess, whose stderr must be one line with no traceback). The regression tests of each item are
in tests/ (tests/core/test_grading_verdicts.py, tests/core/test_grading_security.py,
tests/envs/test_failed_step.py, tests/core/test_reliability_inputs.py,
tests/apps/test_openenv_robustness.py, tests/core/test_grading_pool.py); this script is the
end-to-end rerun, about a minute on 2 cores (the default model is not loaded; the micro engine is).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

RESULTS: list[tuple[str, bool, str]] = []
# `ttc-gym ARGS` as a subprocess of this interpreter (the console script's entry point).
TTC_GYM = [sys.executable, "-c", "import sys; from ttc_gym.cli import main; sys.exit(main())"]
# Errors a user may get for bad input: the package's own, and the built-in types they derive from.
CLEAR_ERRORS = (ValueError, TypeError, OSError, RuntimeError)


def check(item: str, label: str, run: Callable[[], Any], expect: Any = "error") -> None:
    """Run one reproduction: PASS when it returns `expect` (a value, or a predicate), or, with
    expect="error", when it raises a clear error whose message is one line."""
    try:
        got = run()
    except CLEAR_ERRORS as err:
        message = str(err)
        ok = expect == "error" and bool(message) and "\n" not in message.strip()
        RESULTS.append((f"{item} {label}", ok, f"{type(err).__name__}: {message[:150]}"))
        return
    except BaseException as err:  # noqa: BLE001 - a probe reports every failure
        RESULTS.append((f"{item} {label}", False, f"{type(err).__name__} (not a clear error): {str(err)[:120]}"))
        return
    ok = expect(got) if callable(expect) else (expect != "error" and got == expect)
    RESULTS.append((f"{item} {label}", bool(ok), f"returned {got!r:.150}"))


def cli(args: list[str], timeout: float = 300, env: dict | None = None) -> tuple[int, str]:
    """`ttc-gym ARGS` in a subprocess: (exit status, stderr)."""
    proc = subprocess.run([*TTC_GYM, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    return proc.returncode, proc.stderr


def one_line_error(status_and_err: tuple[int, str]) -> bool:
    """A failed command whose error is its last stderr line (after any progress line), no traceback."""
    status, err = status_and_err
    lines = [line for line in err.splitlines() if line.strip()]
    return (status != 0 and bool(lines) and "Traceback" not in err and ": error: " in lines[-1]
            and not any("error" in line.lower() for line in lines[:-1]))


def main() -> int:
    import gymnasium as gym

    import ttc_gym  # noqa: F401
    from ttc_gym.grading import compare_answers

    tmp = Path(tempfile.mkdtemp(prefix="ttc-probe-"))

    # 1. code execution in the grader worker without math-verify (both sides; a worker of its own)
    shadow = tmp / "shadow" / "math_verify"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the probe')\n")
    work = tmp / "work1"
    work.mkdir()
    script = textwrap.dedent("""
        from ttc_gym.grading import compare_answers
        print(compare_answers('5', "__import__('os').mkdir('pwned')", timeout=30.0),
              compare_answers("__import__('os').mkdir('pwned2')", '5', timeout=30.0))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp / "shadow")})
    RESULTS.append(("1 payload in gold and answer, math-verify unimportable", proc.returncode == 0
                    and not any(work.iterdir()), f"verdicts {proc.stdout.strip()}, folder holds "
                    f"{sorted(p.name for p in work.iterdir())}"))

    # 2. a step that raises (an episode over the micro model's context) changes nothing
    env = gym.make("TTC-Math-v0", engine="micro", num_prover_samples=2, max_episodes=3)
    env.reset(seed=0)
    check("2", "step over the micro model's context", lambda: env.step("1 + " * 600))
    check("2", "the next step after it", lambda: env.step("let me think")[4]["episodes_used"], 1)

    # 3. a question longer than the observation space
    check("3", "reset with a 20,001-character question",
          lambda: env.reset(seed=0, options={"problem": {"question": "x" * 20_001, "answer": "1"}}))

    # 4. grader verdicts (the full table is tests/core/test_grading_verdicts.py)
    verdicts = [("2 3", "23", False), ("1, 234", "1234", False), (r"\sqrt{2}", "1.41421356", False),
                ("0." + "3" * 500, "1/3", False), ("(1,2)", r"\{1,2\}", False), ("1e3", "1000", True),
                ("1.0e+02", "100", True), ("i^2", "-1", True), (r"e^{i\pi}", "-1", True), (r"\sqrt{-1}", "i", True),
                ("(1+i)^8", "16", True), ("½", "1/2", True), ("\u200b5", "5", True),
                (r"\varnothing", r"\emptyset", True), (r"0.\overline{9}", "1", True), ("1 < x < 2", "(1,2)", True),
                (r"\color{red}{5}", "5", True), (r"\text{\text{5}}", "5", True), ("5 = x", "5", True)]
    for pred, gold, verdict in verdicts:
        check("4", f"{pred[:16]!r} vs {gold!r}", lambda p=pred, g=gold: compare_answers(p, g, timeout=30.0), verdict)
    menv = gym.make("TTC-Math-v0", engine="micro", num_prover_samples=2, max_episodes=2)
    menv.reset(seed=0, options={"problem": {"question": "What is 20 + 3?", "answer": "23"}})
    check("4", r"env: \boxed{2 3} against gold 23", lambda: menv.step(r"It is \boxed{2 3}")[4]["outcome"], 0.0)

    # 5. gold answers the grader can never match
    from ttc_gym.problems import load_problems

    (tmp / "float.jsonl").write_text('{"question": "q", "answer": 0.00001}\n')
    check("5", "JSON float gold 0.00001", lambda: load_problems(tmp / "float.jsonl")[0].answer, "0.00001")
    (tmp / "long.jsonl").write_text(json.dumps({"question": "q", "answer": "1" * 1001}) + "\n")
    check("5", "gold of 1,001 characters", lambda: load_problems(tmp / "long.jsonl"))

    # 6. temperatures that underflow
    check("6", "temperature=1e-300", lambda: gym.make("TTC-MathMeta-v0", engine="micro", temperature=1e-300))
    check("6", "prover_temperature=1e-300", lambda: gym.make("TTC-Math-v0", engine="micro", prover_temperature=1e-300))

    # 7. a second traces analyze on a busy --out stops at once (a first run holds the folder)
    from ttc_gym.folder_lock import FolderLock

    traces = tmp / "t.jsonl"
    traces.write_text("\n".join(json.dumps({"question": f"What is {i}+{i}?", "answer": str(2 * i),
                                            "trace": f"{i}+{i} is {2 * i}."}) for i in range(1, 4)) + "\n")
    busy = tmp / "busy"
    busy.mkdir()
    with FolderLock(busy, what="ttc-gym traces analyze"):
        check("7", "traces analyze --resume on a held folder", lambda: one_line_error(cli(
            ["traces", "analyze", str(traces), "--out", str(busy), "--resume", "--engine", "micro", "--no-progress",
             "--no-plots"])), True)

    # 8. port, --n, hand-edited results
    check("8", "ttc-gym serve --port 99999", lambda: one_line_error(cli(["serve", "TTC-Sim-v0", "--port", "99999"])),
          True)
    check("8", "traces collect --n -1", lambda: one_line_error(cli(
        ["traces", "collect", "--engine", "micro", "--n", "-1", "--out", str(tmp / "c.jsonl"), "--no-progress"])), True)
    from ttc_gym.bench.results_file import record_problem

    good = {"agent": "oracle", "budget": "4", "seed": 0, "total_reward": 1.0, "outcome": 1.0, "episodes_used": 1,
            "tokens_used": 10, "j_curve": [0.2, 0.9], "token_curve": [0, 10]}
    check("8", "results record with NaN reward", lambda: record_problem({**good, "total_reward": math.nan}),
          lambda why: isinstance(why, str) and "not finite" in why)
    check("8", "results record with outcome 7", lambda: record_problem({**good, "outcome": 7}),
          lambda why: isinstance(why, str) and "outcome is 7" in why)

    # 9. a FIFO and /dev/zero as problem files
    os.mkfifo(tmp / "fifo.jsonl")
    check("9", "problem file that is a FIFO", lambda: load_problems(tmp / "fifo.jsonl"))
    for suffix in (".jsonl", ".json", ".csv"):
        (tmp / f"zero{suffix}").symlink_to("/dev/zero")
        check("9", f"{suffix} linked to /dev/zero", lambda s=suffix: load_problems(tmp / f"zero{s}"))

    # 10. deep tracebacks
    check("10", "max_episodes=2**70", lambda: gym.make("TTC-Math-v0", engine="micro", max_episodes=2**70))
    check("10", "num_prover_samples=2**63", lambda: gym.make("TTC-Math-v0", engine="micro", num_prover_samples=2**63))
    check("10", "compare_answers timeout=1e308", lambda: compare_answers("1", "1", timeout=1e308))
    from ttc_gym.problems import Problem

    check("10", "5,001-digit integer gold", lambda: Problem(id="a", question="q", answer="7" * 5001, source="s"))
    big = "7" * 401
    check("10", "401-digit integer gold, graded", lambda: compare_answers(big, big, timeout=30.0), True)
    check("10", "401-digit gold vs 400 digits", lambda: compare_answers("7" * 400, big, timeout=30.0), False)
    genv = gym.make("TTC-Math-v0", engine="micro", num_prover_samples=2, max_episodes=2)
    genv.reset(seed=0, options={"problem": {"question": "Write 401 sevens.", "answer": big}})
    check("10", "env step with a 401-digit gold", lambda: genv.step(rf"\boxed{{{big}}}")[4]["outcome"], 1.0)
    from ttc_gym.envs.replay_data import load_replay_data
    from ttc_gym.traces.loaders import load_raw_traces

    (tmp / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (tmp / "deep.json").write_text("[" * 100_000)
    check("10", "[ x 100,000 in a problem file (.jsonl)", lambda: load_problems(tmp / "deep.jsonl"))
    check("10", "[ x 100,000 in a problem file (.json)", lambda: load_problems(tmp / "deep.json"))
    check("10", "[ x 100,000 in raw traces", lambda: load_raw_traces(tmp / "deep.jsonl"))
    check("10", "[ x 100,000 in replay data", lambda: load_replay_data(tmp / "deep.jsonl"))
    check("10", "[ x 100,000 in traces analyze", lambda: one_line_error(cli(
        ["traces", "analyze", str(tmp / "deep.jsonl"), "--out", str(tmp / "an_deep"), "--engine", "micro",
         "--no-progress", "--no-plots"])), True)
    (tmp / "latin1.jsonl").write_bytes(b'{"problem": "caf\xe9", "completion": "x"}\n')
    check("10", "non-UTF-8 bytes in load_raw_traces", lambda: load_raw_traces(tmp / "latin1.jsonl"))
    check("10", "traces analyze --engine nope-engine-xyz", lambda: one_line_error(cli(
        ["traces", "analyze", str(traces), "--out", str(tmp / "an_nope"), "--engine", "nope-engine-xyz",
         "--no-progress", "--no-plots"])), True)
    check("10", "SIGINT during train", lambda: sigint_train(tmp), True)
    openenv_checks()

    # 11. the grader under concurrency: examples/benchmarks/grader_concurrency.py (figures in the note)
    # 12. idle sessions: in openenv_checks
    # 13. raw trace rows {question, answer, trace}
    check("13", "trace rows {question, answer, trace}", lambda: len(load_raw_traces(traces)), 3)

    for label, ok, what in RESULTS:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {what}")
    failed = sum(not ok for _, ok, _ in RESULTS)
    print(f"{len(RESULTS) - failed} of {len(RESULTS)} reproductions give the right result or a one-line error.")
    return 1 if failed else 0


def sigint_train(tmp: Path) -> bool:
    """`ttc-gym train` interrupted by Ctrl+C (SIGINT) once it runs: one line, exit 130."""
    proc = subprocess.Popen([*TTC_GYM, "train", "--env", "TTC-Sim-v0", "--iterations",
                             "100000", "--checkpoint", str(tmp / "train.json")], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(15)  # past the imports: the trainer is iterating
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    return proc.returncode == 130 and lines == ["ttc-gym train: interrupted."]


def openenv_checks() -> None:
    try:
        import httpx
        from websockets.sync.client import connect

        from ttc_gym.integrations.openenv import start_server
    except ImportError as err:
        RESULTS.append(("10/12 OpenEnv server", False, f"not checked: {err} (pip install 'ttc-gym[openenv]')"))
        return
    with start_server("TTC-Sim-v0", max_sessions=1, idle_timeout=2.0) as server:
        for path, body in (("/reset", {"options": {"difficulty": 7}}), ("/step", {"action": {"action": 0}})):
            check("10", f"HTTP {path} with a bad body", lambda p=path, b=body: (
                lambda r: (r.status_code, r.json().get("detail", "")[:60]))(httpx.post(server.url + p, json=b, timeout=30)),
                lambda got: got[0] == 400 and bool(got[1]))
        url = server.url.replace("http://", "ws://") + "/ws"
        with connect(url, open_timeout=30) as ws:
            ws.send(b"\x00\x01binary")
            error = json.loads(ws.recv(timeout=30))
            ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
            reply = json.loads(ws.recv(timeout=30))
            RESULTS.append(("10 binary WebSocket frame", error["type"] == "error" and reply["type"] == "observation",
                            f"{error['data']['message'][:80]!r}, then a reset gives {reply['type']!r}"))
            idle = json.loads(ws.recv(timeout=30))  # silent for 2 s: the server closes the session
            RESULTS.append(("12 idle session closed", idle["data"].get("code") == "IDLE_TIMEOUT",
                            f"{idle['data']['message'][:80]!r}"))


if __name__ == "__main__":
    sys.exit(main())
