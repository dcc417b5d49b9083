"""The static loop's decoding step compiled from C, for small Llama models on a CPU (issue 28).

`compiled_step.c` computes what `LlamaWeights.step` (`ttc_gym.engines.llama_forward`) computes for
a fused model (weights <= `llama_forward.FUSE_BYTES`, float32, CPU): one step of the whole grid of
rows, each row attending to its group's prompt and its own tokens; with `decode_step`, also each
row's token (`sampling.pick_tokens_v2`'s draw without a nucleus filter), EOS and the loop's
bookkeeping; with `prefill`, the prompt tokens' keys and values (`LlamaWeights.prefill`). The static
loop (`ttc_gym.engines.static_decoding`) calls it in place of the torch code when it applies; stop
rules, buffers and compaction are unchanged, so a seed draws what it drew before (sampler version 2)
up to float rounding of the logits (~1e-6; a draw moves only when its uniform lies that close to a
CDF boundary).

Why: at the micro-reasoner's size (1.1 M parameters) one token's arithmetic takes microseconds and
an eager torch step spends most of its time in ~150 ops of per-op framework work; the C step has
none (`examples/benchmarks/micro_speed.py` times both). Rows that finished are skipped.

Building: on first use the source is compiled with the machine's C compiler (`CC`, Python's own,
cc, gcc or clang; `-O3 -march=native`, no -ffast-math) into a cache folder (`TTC_GYM_KERNEL_CACHE`,
else `$XDG_CACHE_HOME/ttc_gym/kernels`, else `~/.cache/ttc_gym/kernels`), named by a hash of the
source, the flags, the compiler and the CPU, written atomically (concurrent processes are safe).
Where there is no compiler, the build fails or `TTC_GYM_COMPILED_STEP=0` is set, `library()` says
why and the loop keeps the torch step (the same switch and `build` serve the few-row kernel,
`ttc_gym.engines.rows_linear`). On first binding in a process the compiled step is checked
against the torch step on a small grid; a mismatch disables it for the process (with the reason).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import torch

SOURCE = Path(__file__).with_name("compiled_step.c")
FLAGS = ("-O3", "-march=native", "-std=gnu11", "-shared", "-fPIC")
# Largest relative difference from the torch step accepted by the first-use check.
CHECK_TOLERANCE = 1e-3

_state: dict[str, Any] = {}  # "lib", "reason", "checked": the process's one library


def compiler() -> str | None:
    """The C compiler to use (CC, Python's own, cc, gcc or clang on PATH), or None."""
    for name in (os.environ.get("CC"), (sysconfig.get_config_var("CC") or "").split(" ")[0], "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get("TTC_GYM_KERNEL_CACHE"):
        return Path(os.environ["TTC_GYM_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ttc_gym" / "kernels"


def _cpu_signature() -> str:
    """What -march=native compiles for: the CPU's model and flags (a library built for another CPU
    could hold instructions this one lacks)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "\n".join(dict.fromkeys(wanted))
    except OSError:
        return platform.processor() or platform.machine()


def build(cc: str, source_path: Path = SOURCE, flags: tuple[str, ...] = FLAGS) -> Path:
    """The shared library built from `source_path` (cached; see the module docstring)."""
    source = source_path.read_bytes()
    key = hashlib.sha256(b"\0".join([source, cc.encode(), " ".join(flags).encode(), platform.machine().encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    folder = cache_dir()
    target = folder / f"{source_path.stem}-{key}.so"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run([cc, *flags, "-o", str(built), str(source_path), "-lm"], capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{cc} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-400:]}")
        os.replace(built, target)  # atomic: a concurrent build of the same key writes the same bytes
    return target


def load(source_path: Path, flags: tuple[str, ...], what: str) -> tuple[ctypes.CDLL | None, str | None]:
    """(the library built from `source_path`, None), or (None, why not): `TTC_GYM_COMPILED_STEP=0`, no
    compiler, or a failed build or load (`what` names the library in that reason)."""
    if os.environ.get("TTC_GYM_COMPILED_STEP", "").strip() == "0":
        return None, "turned off by TTC_GYM_COMPILED_STEP=0"
    if (cc := compiler()) is None:
        return None, "no C compiler found (set CC, or install gcc or clang)"
    try:
        return ctypes.CDLL(str(build(cc, source_path, flags))), None
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        return None, f"{what} could not be built or loaded: {err}"


def library() -> tuple[ctypes.CDLL | None, str | None]:
    """(the loaded library, None), or (None, why there is none). Built or loaded once per process."""
    if "reason" in _state:
        return _state.get("lib"), _state["reason"]
    lib, reason = load(SOURCE, FLAGS, "the compiled step")
    if lib is not None:
        lib.ttc_scratch_floats.restype = ctypes.c_long
        lib.ttc_scratch_floats.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.ttc_decode_step.restype = ctypes.c_int
        lib.ttc_decode_step.argtypes = ([ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 4
                                        + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 6 + [ctypes.c_int, ctypes.c_float]
                                        + [ctypes.c_void_p] * 7)
        lib.ttc_prefill_scratch_floats.restype = ctypes.c_long
        lib.ttc_prefill_scratch_floats.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.ttc_prefill.restype = None
        lib.ttc_prefill.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int] \
            + [ctypes.c_void_p] * 4
        lib.ttc_grid_step.restype = None
        lib.ttc_grid_step.argtypes = ([ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 4
                                      + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 5)
    _state.update(lib=lib, reason=reason)
    return lib, reason


def unsupported_reason(weights: Any) -> str | None:
    """None when `CompiledStep` can run these `LlamaWeights`, else why not."""
    if not weights.fused:
        return "the model is too big for the fused layout (llama_forward.FUSE_BYTES)"
    if weights.device.type != "cpu" or weights.dtype != torch.float32:
        return f"the compiled step runs float32 on a CPU, not {weights.dtype} on {weights.device.type}"
    return None


class _Model(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_int) for name in
                 ("hidden", "heads", "kv_heads", "head_dim", "inter", "layers", "vocab", "positions")]
                + [("eps", ctypes.c_float), ("scale", ctypes.c_float)]
                + [(name, ctypes.c_void_p) for name in ("embed", "norm", "head", "cos", "sin")]
                + [(name, ctypes.POINTER(ctypes.c_void_p)) for name in
                   ("norm1", "qkv", "o", "norm2", "gate_up", "down")])


class CompiledStep:
    """The compiled step bound to one `LlamaWeights` (fused, float32, CPU); `step` has the torch
    step's contract plus `live` (rows whose flag is False are skipped; their logits are 0)."""

    def __init__(self, lib: ctypes.CDLL, weights: Any):
        reason = unsupported_reason(weights)
        if reason is not None:
            raise ValueError(f"CompiledStep cannot run these weights: {reason}.")
        self.lib, self.weights = lib, weights
        self._keep: list[Any] = []  # tensors and pointer tables the struct points into
        w = weights

        def ptr(tensor: torch.Tensor) -> int:
            tensor = tensor.detach().contiguous()
            self._keep.append(tensor)
            return tensor.data_ptr()

        def table(key: str) -> Any:
            array = (ctypes.c_void_p * w.layers_count)(*[ptr(entry[key]) for entry in w.layers])
            self._keep.append(array)
            return array

        self.model = _Model(w.hidden, w.heads, w.kv_heads, w.head_dim, w.intermediate, w.layers_count,
                            w.embed.shape[0], w.cos.shape[0], w.eps, w.scale,
                            ptr(w.embed), ptr(w.norm), ptr(w.lm_head_t), ptr(w.cos), ptr(w.sin),
                            table("norm1"), table("qkv"), table("o"), table("norm2"), table("gate_up"), table("down"))
        self._model_ptr = ctypes.addressof(self.model)
        self._scratch = torch.empty(0)
        self._logits = torch.empty(0)
        self._check_rows = torch.empty(0, dtype=torch.int32)
        self._open = torch.empty(0, dtype=torch.bool)
        self._n_check = ctypes.c_int32(0)
        self._memo: tuple | None = None  # decode_step's checked tensors and their C arguments

    def _grid_args(self, t: int, cache: Any) -> tuple[list, int]:
        """The arguments the C functions share up to t (the cache's buffers), and the row count;
        checks that the step fits the cache and sizes the scratch and logits buffers."""
        prompt_kv, own_kv = cache.prompt_kv, cache.own_kv
        groups, n = cache.groups, cache.per_group
        rows, p_max, capacity = groups * n, prompt_kv.shape[4], own_kv.shape[4]
        if not (0 <= t < capacity and int(cache.prompt_lengths.max()) <= p_max):
            raise ValueError(f"CompiledStep: t={t} must be below the own capacity {capacity}, and the prompt "
                             f"lengths at most {p_max}: the cache does not fit this step.")
        if not (prompt_kv.is_contiguous() and own_kv.is_contiguous()):
            raise ValueError("CompiledStep: the cache's prompt_kv and own_kv must be contiguous.")
        if cache.prompt_keys_by_dim is None:  # once per cache (a call's prompts change only when compacted)
            cache.prompt_keys_by_dim = prompt_kv[:, 0].transpose(-1, -2).contiguous()
        need = self.lib.ttc_scratch_floats(self._model_ptr, rows, p_max, capacity)
        if self._scratch.numel() < need:
            self._scratch = torch.empty(need, dtype=torch.float32)
        if self._logits.numel() < rows * self.model.vocab:
            self._logits = torch.empty(rows * self.model.vocab, dtype=torch.float32)
        return [self._model_ptr, groups, n, p_max, cache.prompt_lengths.data_ptr(), prompt_kv.data_ptr(),
                cache.prompt_keys_by_dim.data_ptr(), own_kv.data_ptr(), capacity, t], rows

    def _check_tokens(self, ids: torch.Tensor, positions: torch.Tensor, ahead: int = 0) -> None:
        """Token ids inside the vocabulary and positions (plus `ahead` more steps) inside the rotary
        table: the C code indexes both without bounds checks (torch would raise an IndexError)."""
        if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < self.model.vocab):
            raise ValueError(f"CompiledStep: token ids must lie in [0, {self.model.vocab}), got "
                             f"{int(ids.min())}..{int(ids.max())} (a tokenizer larger than the model's embedding?).")
        if positions.numel() and not (0 <= int(positions.min()) and int(positions.max()) + ahead < self.model.positions):
            raise ValueError(f"CompiledStep: positions (and {ahead} more steps) must lie below the model's "
                             f"{self.model.positions} rotary positions, got up to {int(positions.max())}.")

    @staticmethod
    def _check(name: str, tensor: torch.Tensor, dtype: torch.dtype, rows: int) -> None:
        if tensor.dtype != dtype or tensor.shape[0] != rows or not tensor.is_contiguous():
            raise ValueError(f"CompiledStep: {name} must be a contiguous {dtype} tensor of {rows} rows, "
                             f"got {tensor.dtype} {tuple(tensor.shape)}.")

    def step(self, ids: torch.Tensor, positions: torch.Tensor, t: int, cache: Any, live: torch.Tensor) -> torch.Tensor:
        """Logits [rows, vocab] of one step (see `LlamaWeights.step`); writes own keys/values at t.
        The logits are a buffer the next call overwrites."""
        args, rows = self._grid_args(t, cache)
        ids, positions, live = ids.contiguous(), positions.contiguous(), live.contiguous()
        for name, tensor, dtype in (("ids", ids, torch.int64), ("positions", positions, torch.int64),
                                    ("live", live, torch.bool)):
            self._check(name, tensor, dtype, rows)
        self._check_tokens(ids, positions)
        logits = self._logits[: rows * self.model.vocab].view(rows, self.model.vocab)
        self.lib.ttc_grid_step(*args, ids.data_ptr(), positions.data_ptr(), live.data_ptr(), logits.data_ptr(),
                               self._scratch.data_ptr())
        return logits

    def prefill(self, ids: torch.Tensor, positions: torch.Tensor, pieces: list[tuple[int, int, int, int]],
                prompt_kv: torch.Tensor) -> None:
        """`LlamaWeights.prefill` in C: encode packed prompt tokens and write their keys/values into
        prompt_kv [layers, 2, groups, kv_heads, P, dim] (contiguous); piece (g, start, end, first) is
        tokens[start:end] at positions first.. of group g."""
        if not prompt_kv.is_contiguous() or prompt_kv.dtype != torch.float32:
            raise ValueError("CompiledStep.prefill: prompt_kv must be a contiguous float32 tensor.")
        tokens, groups, p_max = ids.shape[0], prompt_kv.shape[2], prompt_kv.shape[4]
        group_of = torch.empty(tokens, dtype=torch.int32)
        for g, start, end, first in pieces:
            if not (0 <= g < groups and 0 <= start <= end <= tokens and 0 <= first and first + end - start <= p_max):
                raise ValueError(f"CompiledStep.prefill: piece {(g, start, end, first)} does not fit {tokens} tokens, "
                                 f"{groups} groups and {p_max} positions.")
            group_of[start:end] = g
        if sum(end - start for _, start, end, _ in pieces) != tokens:
            raise ValueError("CompiledStep.prefill: the pieces must cover every token once.")
        ids, positions = ids.to(torch.int64).contiguous(), positions.to(torch.int64).contiguous()
        if positions.shape != ids.shape:
            raise ValueError(f"CompiledStep.prefill: {ids.shape[0]} ids but {positions.shape[0]} positions.")
        self._check_tokens(ids, positions)
        scratch = torch.empty(self.lib.ttc_prefill_scratch_floats(self._model_ptr, tokens, p_max), dtype=torch.float32)
        self.lib.ttc_prefill(self._model_ptr, groups, p_max, prompt_kv.data_ptr(), tokens, ids.data_ptr(),
                             positions.data_ptr(), group_of.data_ptr(), scratch.data_ptr())

    def decode_step(self, ids: torch.Tensor, positions: torch.Tensor, t: int, cache: Any, live: torch.Tensor,
                    uniforms: torch.Tensor | None, sampling: Any, eos_table: torch.Tensor, cand_table: torch.Tensor,
                    out: torch.Tensor, ended: torch.Tensor) -> tuple[int, list[int], torch.Tensor]:
        """One step of the static loop for every live row, in place: the forward, each row's token
        (`sampling.pick_tokens_v2` without a nucleus filter: greedy, or inverse CDF with uniforms[:, t])
        into out[:, t] and ids, EOS rows finished (live, ended), every position advanced.
        Returns (open groups, rows whose token could complete a stop string, [groups] open flags: a
        buffer the next call overwrites). ids/positions/out/ended int64, live bool, uniforms float64
        [rows, steps] (None: greedy). The tensors are checked when they change (the loop passes the
        same ones, updated in place, until it compacts the grid); each step checks only t."""
        if sampling.top_p < 1.0 and not sampling.greedy:
            raise ValueError("CompiledStep.decode_step draws without a nucleus filter; use step + pick_tokens_v2.")
        objects = (cache, ids, positions, live, uniforms, out, ended, eos_table, cand_table, self._scratch, self._logits)
        memo = self._memo
        if (memo is None or memo[1] != (sampling.temperature, sampling.greedy)
                or any(a is not b for a, b in zip(memo[0], objects))):
            prepared = self._prepare(t, cache, ids, positions, live, uniforms, sampling, eos_table, cand_table, out,
                                     ended)  # (may reallocate the scratch and logits buffers)
            objects = objects[:-2] + (self._scratch, self._logits)
            memo = self._memo = (objects, (sampling.temperature, sampling.greedy), *prepared)
        _, _, head, tail, capacity, groups = memo
        if not 0 <= t < capacity:
            raise ValueError(f"CompiledStep: t={t} must be below the own capacity {capacity}.")
        count = self.lib.ttc_decode_step(*head, t, *tail)
        found = self._n_check.value
        return count, (self._check_rows[:found].tolist() if found else []), self._open[:groups]

    def forget(self) -> None:
        """Drop decode_step's references to the last call's tensors (called when a decode ends)."""
        self._memo = None

    def _prepare(self, t, cache, ids, positions, live, uniforms, sampling, eos_table, cand_table, out, ended):
        """Checks decode_step's tensors and returns the C call's arguments before and after t."""
        args, rows = self._grid_args(t, cache)
        steps = out.shape[1]
        for name, tensor, dtype in (("ids", ids, torch.int64), ("positions", positions, torch.int64),
                                    ("live", live, torch.bool), ("out", out, torch.int64),
                                    ("ended", ended, torch.int64)):
            self._check(name, tensor, dtype, rows)
        if uniforms is not None:
            self._check("uniforms", uniforms, torch.float64, rows)
            if uniforms.shape[1] != steps:
                raise ValueError(f"CompiledStep: uniforms has {uniforms.shape[1]} steps, out has {steps}.")
        self._check_tokens(ids, positions, ahead=steps - 1 - t)  # later ids are drawn from the logits
        vocab = self.model.vocab
        for name, table in (("eos_table", eos_table), ("cand_table", cand_table)):
            if table.dtype != torch.bool or table.shape[0] < vocab or not table.is_contiguous():
                raise ValueError(f"CompiledStep: {name} must be a contiguous bool tensor of {vocab} entries, "
                                 f"got {table.dtype} {tuple(table.shape)}.")
        if self._check_rows.numel() < rows:
            self._check_rows = torch.empty(rows, dtype=torch.int32)
        if self._open.numel() < cache.groups:
            self._open = torch.empty(cache.groups, dtype=torch.bool)
        head = args[:-1]  # everything before t
        tail = [ids.data_ptr(), positions.data_ptr(), live.data_ptr(), self._logits.data_ptr(),
                self._scratch.data_ptr(), None if uniforms is None else uniforms.data_ptr(), steps,
                float(sampling.temperature), eos_table.data_ptr(), cand_table.data_ptr(), out.data_ptr(),
                ended.data_ptr(), self._check_rows.data_ptr(), ctypes.addressof(self._n_check), self._open.data_ptr()]
        return head, tail, cache.own_kv.shape[4], cache.groups


def bind(weights: Any, check_grid: Any) -> CompiledStep | None:
    """The compiled step bound to `weights`, or None where there is no library. The process's first
    binding is checked against the torch step on the grid `check_grid()` returns (see
    `check_against_torch`); a mismatch turns the compiled step off for the process, with the reason
    `library()` then gives."""
    lib, _ = library()
    if lib is None:
        return None
    step = CompiledStep(lib, weights)
    if "checked" not in _state:
        mismatch = check_against_torch(step, check_grid)
        _state["checked"] = mismatch
        if mismatch is not None:
            _state.update(lib=None, reason=f"{mismatch}; turned off for this process")
            return None
    return step


def check_against_torch(step: CompiledStep, cache_factory: Any) -> str | None:
    """None when `step` agrees with the torch step on a small grid built by `cache_factory`
    (a callable returning (ids, positions, t, cache, live) for `step.weights`), else the mismatch."""
    with torch.no_grad():
        ids, positions, t, cache, live = cache_factory()
        own_before = cache.own_kv.clone()
        expected = step.weights.step(ids, positions, t, cache)[live]
        cache.own_kv.copy_(own_before)
        got = step.step(ids, positions, t, cache, live)[live]
    scale = float(expected.abs().max()) or 1.0
    error = float((got - expected).abs().max()) / scale
    if not error <= CHECK_TOLERANCE:
        return f"the compiled step's logits differ from the torch step's by {error:.2e} (relative)"
    return None
