"""`ttc-gym traces analyze` / `collect` end to end with the tiny random engine: files, figures,
summary, resume after an interruption and after a kill, collection through the LLM agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttc_gym.cli import main
from ttc_gym.engines import register_engine_scheme
from ttc_gym.traces import load_raw_traces, read_analysed_traces
from ttc_gym.traces.analyze import ANALYSED_FILE, Segmentation, analyse_file, make_prover, prover_record

REPO = Path(__file__).resolve().parents[2]
TINY = "tiny-traces-test"
register_engine_scheme(TINY, "ttc_gym.engines.testing:tiny_random_engine", takes_model=False)


def r1_text(i: int, attempt: int = 0) -> str:
    return "\n\n".join([f"We need {i} + 3 (attempt {attempt}).", "Adding gives the sum.", f"So it is {i + 3}.",
                        "Wait, let me check the addition.", f"{i} + 3 = {i + 3} indeed.", "Fine.",
                        "Alternatively, count up from 3.", f"The answer is $\\boxed{{{i + 3}}}$."])


def write_traces(path: Path, n: int) -> Path:
    rows = [{"problem": f"What is {i // 2} + 3?", "answer": str(i // 2 + 3), "problem_id": f"p{i // 2}",
             "trace": r1_text(i // 2, i % 2), "model": "hand", **({"final_answer": str(i // 2 + 3)} if i % 2 == 0 else {})}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_analyze_writes_rows_figures_and_summary_then_resume_skips_all(tmp_path, capsys):
    src = write_traces(tmp_path / "t.jsonl", 3)
    out = tmp_path / "out"
    args = ["traces", "analyze", str(src), "--engine", TINY, "--k", "2", "--out", str(out), "--group-size", "1",
            "--no-progress", "--budgets", "8", "30"]
    assert main(args) == 0
    rows = read_analysed_traces(out / ANALYSED_FILE)
    assert [r["trace_id"] for r in rows] == ["p0#0", "p0#1", "p1#0"]
    for r in rows:  # 3 marker pieces (paragraphs 0, 3, 6) -> 3 episodes -> 4 prefixes
        assert len(r["episodes"]) == 3 and r["episodes"][1]["text"].startswith("Wait")
        assert [p["n_episodes"] for p in r["prefixes"]] == [0, 1, 2, 3]
        assert r["prover"]["engine"] == TINY and r["prover"]["k"] == 2
    assert [(r["final_answer"], r["final_correct"]) for r in rows] == [("3", True), (None, None), ("4", True)]
    for name in ("summary.json", "table.txt", "j_vs_episode.png", "j_vs_tokens.png", "regret_vs_budget.png",
                 "maj_at_k.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["traces"] == 3 and summary["problems"] == 2
    assert [row["C0"] for row in summary["regret_vs_budget"]] == [8, 30]
    assert len(summary["maj_at_k_first_prefix"]) == 2
    assert "C0 (tokens)" in capsys.readouterr().out
    before = (out / ANALYSED_FILE).read_bytes()
    assert main(args) == 2  # the folder holds a run: no --resume, no overwrite
    assert "pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert "analysed 0 traces (3 already done)" in capsys.readouterr().err
    assert (out / ANALYSED_FILE).read_bytes() == before
    assert main(args[:5] + ["--k", "3"] + args[7:] + ["--resume"]) == 2  # another prover: refused
    assert "analysed with prover" in capsys.readouterr().err
    # An analysed file as input: rows of the same prover are reused (no model loaded), others recomputed
    # on the stored episodes.
    again = ["traces", "analyze", str(out / ANALYSED_FILE), "--engine", TINY, "--k", "2", "--no-progress",
             "--no-plots"]
    import ttc_gym.traces.analyze as analyze_module

    monkeypatched = analyze_module.make_prover
    analyze_module.make_prover = None  # would fail if called
    try:
        assert main(again + ["--out", str(tmp_path / "same")]) == 0
    finally:
        analyze_module.make_prover = monkeypatched
    assert "reused 3 trace(s)" in capsys.readouterr().err
    assert read_analysed_traces(tmp_path / "same" / ANALYSED_FILE) == rows
    assert main(again[:5] + ["--k", "3"] + again[7:] + ["--out", str(tmp_path / "k3")]) == 0
    k3 = read_analysed_traces(tmp_path / "k3" / ANALYSED_FILE)
    assert [r["episodes"] for r in k3] == [r["episodes"] for r in rows]
    assert all(len(p["forced_answers"]) == 3 for r in k3 for p in r["prefixes"])


def test_resume_after_interruption_computes_only_what_is_left(tmp_path):
    traces = load_raw_traces(write_traces(tmp_path / "t.jsonl", 5))
    seg = Segmentation(group_size=1)
    prover = make_prover(TINY, k=2)
    info = prover_record(TINY, prover)
    calls = {"n": 0}
    estimate_many = prover.estimate_many

    def interrupted(items):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return estimate_many(items)

    prover.estimate_many = interrupted
    with pytest.raises(KeyboardInterrupt):
        analyse_file(traces, tmp_path / "out", prover, info, segmentation=seg, batch_traces=2, progress=False)
    done = read_analysed_traces(tmp_path / "out" / ANALYSED_FILE)
    assert len(done) == 4  # two batches of two finished before the interruption
    with (tmp_path / "out" / ANALYSED_FILE).open("ab") as f:
        f.write(b'{"format": "ttc-gym/analysed-tr')  # a write cut short by a kill
    fresh = make_prover(TINY, k=2)
    run = analyse_file(traces, tmp_path / "out", fresh, info, segmentation=seg, batch_traces=2, resume=True,
                       progress=False)
    assert run.computed == 1 and fresh.calls == 4  # only the last trace's 4 prefixes were estimated
    assert any("skipped 1 damaged record (line 5: cut short); its trace" in n for n in run.notices)
    assert not list((tmp_path / "out").glob(f"{ANALYSED_FILE}.bak-*"))  # a torn last line alone: cut, no backup
    rows = read_analysed_traces(tmp_path / "out" / ANALYSED_FILE)
    assert [r["trace_id"] for r in rows] == [t.trace_id for t in traces]
    # Same seeds: the rows computed before the interruption equal a fresh computation.
    again = analyse_file(traces[:1], tmp_path / "again", make_prover(TINY, k=2), info, segmentation=seg,
                         progress=False)
    assert again.rows[0]["prefixes"] == rows[0]["prefixes"]


@pytest.mark.slow  # a subprocess that loads the tokenizer, killed mid-run (~30 s on a loaded 2-core machine)
def test_resume_after_kill_recomputes_nothing_finished(tmp_path):
    src = write_traces(tmp_path / "t.jsonl", 40)
    out = tmp_path / "out"
    script = (f"from ttc_gym.engines import register_engine_scheme\n"
              f"register_engine_scheme({TINY!r}, 'ttc_gym.engines.testing:tiny_random_engine', takes_model=False)\n"
              f"from ttc_gym.cli import main\n"
              f"main(['traces', 'analyze', {str(src)!r}, '--engine', {TINY!r}, '--k', '2', '--out', {str(out)!r},"
              f" '--group-size', '1', '--batch-traces', '1', '--no-progress', '--no-plots'])\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    path = out / ANALYSED_FILE
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = {r["trace_id"] for r in read_analysed_traces_tolerant(path)}
    assert 2 <= len(finished) < 40
    traces = load_raw_traces(src)
    prover = make_prover(TINY, k=2)
    run = analyse_file(traces, out, prover, prover_record(TINY, prover), segmentation=Segmentation(group_size=1),
                       resume=True, batch_traces=8, progress=False)
    left = [t for t in traces if t.trace_id not in finished]
    assert run.computed == len(left)
    # 3 prefixes of its own per trace, plus the empty prefix once per problem: none of a finished trace
    assert prover.calls == 3 * len(left) + len({t.problem_id for t in left})
    assert len(read_analysed_traces(path)) == 40


def read_analysed_traces_tolerant(path: Path) -> list[dict]:
    """The complete lines of a file a kill may have cut."""
    from ttc_gym.traces.analyze import read_analysed_file

    return read_analysed_file(path).records


def test_collect_writes_traces_with_the_llm_agent_and_analyses_them(tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    args = ["traces", "collect", "--engine", TINY, "--source", "procedural:1", "--n", "2", "--traces-per-problem", "2",
            "--max-episodes", "2", "--episode-tokens", "6", "--out", str(out), "--k", "2", "--no-progress", "--no-plots"]
    assert main(args + ["--analyze"]) == 0
    traces = load_raw_traces(out)
    assert len(traces) == 4 and len({t.problem_id for t in traces}) == 2
    for t in traces:
        assert t.episodes and len(t.episodes) <= 2 and len(t.episode_tokens) == len(t.episodes)
        assert t.trace_id.startswith(t.problem_id + "#") and t.model == TINY
    rows = read_analysed_traces(tmp_path / "c_analysis" / ANALYSED_FILE)
    assert [r["trace_id"] for r in rows] == [t.trace_id for t in traces]
    for r, t in zip(rows, traces):  # the collected episodes are the analysed ones, with their token counts
        assert [e["text"] for e in r["episodes"]] == list(t.episodes)
        assert [e["tokens"] for e in r["episodes"]] == list(t.episode_tokens)
        assert r["segmentation"]["used"] == "given"
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    # A trace does not depend on which others shared its batch (its own seed).
    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines import make_engine
    from ttc_gym.traces.collect import collect_traces, draw_problems

    problems = draw_problems("procedural:1", 2, 0)
    agent = LLMAgent(make_engine(TINY), max_episode_tokens=6, temperature=0.7, seed=0)
    together = collect_traces(agent, problems, traces_per_problem=2, max_episodes=2, batch_problems=2)
    alone = collect_traces(agent, problems[1:], traces_per_problem=2, max_episodes=2, batch_problems=1)
    assert [t.episodes for t in together[2:]] == [t.episodes for t in alone]
    assert [t.episodes for t in together] == [t.episodes for t in traces]


def test_bad_input_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "Q", "answer": "1", "trace": "t"}\n{"problem": "Q", "trace": "t"}\n')
    assert main(["traces", "analyze", str(bad), "--engine", TINY, "--out", str(tmp_path / "o")]) == 2
    assert "bad.jsonl:2: expected a field 'answer'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


class CommitSecondAgent:
    """Writes "step k" episodes and commits on the second; records the cues it was given."""

    def __init__(self):
        self.cues: list[list[str] | None] = []

    def write_batch(self, observations, infos, seeds, cues=None):
        from ttc_gym.agents.llm import Episode

        self.cues.append(None if cues is None else list(cues))
        out = []
        for k, obs in enumerate(observations):
            n = len(obs["episodes"])
            body = "The final answer is $\\boxed{5}$." if n == 1 else f"step {n}"
            out.append(Episode(((cues or [""] * len(observations))[k]) + (" " + body if cues else body), (7,) * 3))
        return out


def test_collect_with_budget_forcing_forces_every_trace_on_with_mrts_cues(tmp_path, capsys):
    from ttc_gym.prompts import BUDGET_FORCING_CUES
    from ttc_gym.traces.collect import collect_traces, draw_problems

    problems = draw_problems("procedural:1", 2, 0)
    agent = CommitSecondAgent()
    traces = collect_traces(agent, problems, traces_per_problem=2, max_episodes=4, budget_forcing=5,
                            count_tokens=lambda text: len(text.split()))
    for t in traces:
        assert t.natural_episodes == 2 and len(t.episodes) == 7 and t.final_answer == "5"  # the model's own end
        assert [e.split(" ")[0] for e in t.episodes[2:]] == ["Wait", "But", "Alternatively", "But", "Wait"]
        assert [e.rsplit(" ", 2)[0] for e in t.episodes[2:]][1] == "But wait"
        # a forced episode's tokens: what was written (3 ids) and its cue
        assert list(t.episode_tokens) == [3, 3] + [3 + len(c.split()) for c in
                                                   [BUDGET_FORCING_CUES[w % 4] for w in range(5)]]
    assert agent.cues[:2] == [None, None] and agent.cues[2] == ["Wait"] * 4
    assert collect_traces(CommitSecondAgent(), problems, max_episodes=4)[0].natural_episodes is None
    with pytest.raises(TypeError, match="write_batch"):
        collect_traces(type("ActOnly", (), {"act_batch": lambda self, o, i, s: ["x"] * len(o)})(), problems,
                       budget_forcing=1)
    with pytest.raises(TypeError, match="cues"):  # a write_batch that cannot take cues is refused up front
        collect_traces(type("NoCues", (), {"write_batch": lambda self, o, i, s: []})(), problems, budget_forcing=1)
    # Through the command line, with a real (tiny) model: the analysis reports each extension.
    out = tmp_path / "bf.jsonl"
    assert main(["traces", "collect", "--engine", TINY, "--source", "procedural:1", "--n", "2", "--max-episodes", "2",
                 "--episode-tokens", "6", "--budget-forcing", "2", "--out", str(out), "--k", "2", "--no-progress",
                 "--analyze"]) == 0
    rows = read_analysed_traces(tmp_path / "bf_analysis" / ANALYSED_FILE)
    for r, t in zip(rows, load_raw_traces(out)):
        assert r["natural_episodes"] == t.natural_episodes and len(r["episodes"]) == t.natural_episodes + 2
        assert r["episodes"][-2]["text"].startswith("Wait") and r["episodes"][-1]["text"].startswith("But wait")
    summary = json.loads((tmp_path / "bf_analysis" / "summary.json").read_text())
    assert summary["budget_forcing"]["extensions"] == 2 and summary["budget_forcing"]["traces"] == len(rows)
    assert (tmp_path / "bf_analysis" / "budget_forcing.png").stat().st_size > 0
    assert "budget forcing:" in capsys.readouterr().out
    assert main(["traces", "collect", "--engine", TINY, "--budget-forcing", "-1", "--out", str(tmp_path / "x.jsonl"),
                 "--no-progress"]) == 2


def test_llm_agent_cues_start_the_episode_and_leave_uncued_seeds_alone():
    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines import make_engine

    agent = LLMAgent(make_engine(TINY), max_episode_tokens=5, temperature=0.7, seed=3)
    obs, infos = [{"problem": "What is 2+3?", "episodes": ("First.",)}] * 2, [{}, {}]
    plain = agent.write_batch(obs, infos, [1, 2])
    assert agent.write_batch(obs, infos, [1, 2], cues=["", ""]) == plain
    cued = agent.write_batch(obs, infos, [1, 2], cues=["Wait", ""])
    assert cued[1] == plain[1] and cued[0].text.startswith("Wait") and cued[0].prompt.endswith("Wait")
    with pytest.raises(ValueError, match="one cue"):
        agent.write_batch(obs, infos, [1, 2], cues=["Wait"])
