"""Reasoning traces written by any model: files, MRT's episode segmentation, J per prefix, MRT's
figures (docs/traces.md).

- `format`: raw traces (`RawTrace`) and analysed traces (`ANALYSED_FORMAT`, `read_analysed_traces`);
- `loaders`: raw traces from common exports (`load_raw_traces`);
- `segment`: MRT's segmentation (`segment_trace`);
- `analyze`: J after every prefix with any engine as the prover, resumable (`analyse_file`);
- `report`: the summary, table and figures of analysed traces (`write_report`);
- `collect`: traces written by an agent on a problem source (`collect_traces`);
- `commands`: `ttc-gym traces analyze` / `ttc-gym traces collect`.

`shipped_trace_file(name)` is the path of a trace set shipped in `ttc_gym/data/traces/`.
"""

from __future__ import annotations

from pathlib import Path

from ttc_gym.traces.format import (
    ANALYSED_FORMAT,
    RAW_FORMAT,
    RawTrace,
    TraceFormatError,
    check_analysed_row,
    read_analysed_traces,
)
from ttc_gym.traces.loaders import load_raw_traces, row_to_raw_trace
from ttc_gym.traces.segment import segment_trace

TRACE_DATA = Path(__file__).resolve().parent.parent / "data" / "traces"

__all__ = [
    "ANALYSED_FORMAT",
    "RAW_FORMAT",
    "RawTrace",
    "TRACE_DATA",
    "TraceFormatError",
    "check_analysed_row",
    "load_raw_traces",
    "read_analysed_traces",
    "row_to_raw_trace",
    "segment_trace",
    "shipped_trace_file",
    "shipped_trace_sets",
]


def shipped_trace_sets() -> list[str]:
    """Names of the analysed trace sets shipped with ttc-gym (files `ttc_gym/data/traces/<name>.jsonl`)."""
    return sorted(p.stem for p in TRACE_DATA.glob("*.jsonl")) if TRACE_DATA.is_dir() else []


def shipped_trace_file(name: str) -> Path:
    """The path of the shipped analysed trace set `name` (e.g. "smollm2_procedural")."""
    path = TRACE_DATA / f"{name.removesuffix('.jsonl')}.jsonl"
    if not path.is_file():
        raise ValueError(f"no shipped trace set {name!r}; the shipped sets are {shipped_trace_sets()}.")
    return path
