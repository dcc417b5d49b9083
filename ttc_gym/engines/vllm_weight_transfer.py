"""vLLM's own weight-update API for RL (its "weight transfer" system, IPC backend), as `VLLMEngine` uses it.

Written against vLLM's docs, "Training > Weight Transfer" and its IPC page, and the offline `LLM`'s
RL methods (`vllm/entrypoints/rl/offline.py`): an `LLM` built with
`weight_transfer_config=WeightTransferConfig(backend="ipc")` takes new weights through

    llm.init_weight_transfer_engine({"init_info": {}})          # once; a no-op for IPC
    llm.start_weight_update(...)                                # four-phase releases only
    llm.update_weights({"update_info": update_info})            # the transfer
    llm.finish_weight_update()                                  # four-phase releases only

where `update_info` is the IPC wire format: `names`, `dtype_names`, `shapes` and, per weight, a
CUDA IPC handle (`torch.multiprocessing.reductions.reduce_tensor`) keyed by the physical GPU's UUID,
pickled and base64-encoded in `ipc_handles_pickled` (the form vLLM's docs give for a trainer that
talks to vLLM through a serialized channel; the worker unpickles it only with
`VLLM_ALLOW_INSECURE_SERIALIZATION=1`). Each worker rebuilds the tensors from the handles and loads
them with the model's own `load_weights` (checkpoint names), so the trainer's tensors must sit on
the GPU vLLM's worker uses and stay alive until `update_weights` returns.

Where releases differ (vLLM changed this API several times between 0.22 and 0.33): releases before
the four-phase protocol have no `start_weight_update` / `finish_weight_update` (then only
`update_weights` is called); some take `start_weight_update(is_checkpoint_format=True)`, later ones
take no argument (the keyword is passed only when the method has it). The trainer-side helper classes
(`IPCWeightTransferEngine.trainer_send_weights`, later `WeightTransferTrainerFactory.trainer_init`)
changed more, so they are not used: the wire format and the four `LLM` methods are what stayed.

Not run on a GPU: the tests (tests/core/test_vllm_engine.py) check the dispatch and the message's
structure against a fake `LLM` that records the calls; docs/gpu.md says what is and is not exercised.
"""

from __future__ import annotations

import base64
import inspect
import pickle
from typing import Any, Callable, Sequence

# `LLM` methods of the weight-transfer API: update_weights is required, the other two where present.
PHASES = ("start_weight_update", "update_weights", "finish_weight_update")


def has_weight_transfer(llm_class: Any) -> bool:
    """Whether the installed vLLM has the native API: `vllm.config.WeightTransferConfig` and, on
    `llm_class` (`vllm.LLM`), `init_weight_transfer_engine` and `update_weights`."""
    try:
        from vllm.config import WeightTransferConfig  # noqa: F401
    except Exception:  # no vLLM, or a vLLM before the weight-transfer API
        return False
    return all(callable(getattr(llm_class, m, None)) for m in ("init_weight_transfer_engine", "update_weights"))


def ipc_config() -> Any:
    """`WeightTransferConfig(backend="ipc")`, for `vllm.LLM(weight_transfer_config=...)`."""
    from vllm.config import WeightTransferConfig

    return WeightTransferConfig(backend="ipc")


def ipc_update_info(
    items: Sequence[tuple[str, Any]], gpu_uuid: str, reduce: Callable[[Any], Any]
) -> dict[str, Any]:
    """vLLM's IPC `update_info` for `items` ((name, tensor) pairs, tensors already on the GPU whose
    UUID is `gpu_uuid`), each handle made by `reduce` (torch's `reduce_tensor` on a GPU)."""
    handles = [{gpu_uuid: reduce(tensor)} for _, tensor in items]
    return {
        "names": [name for name, _ in items],
        "dtype_names": [str(tensor.dtype).split(".")[-1] for _, tensor in items],
        "shapes": [list(tensor.shape) for _, tensor in items],
        "ipc_handles_pickled": base64.b64encode(pickle.dumps(handles)).decode("ascii"),
    }


def to_gpu(items: Sequence[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], str, Callable[[Any], Any]]:
    """The weights as contiguous tensors on this process's current CUDA device, that device's UUID,
    and torch's `reduce_tensor` (CUDA only: not exercised on a CPU)."""
    import torch
    from torch.multiprocessing.reductions import reduce_tensor

    if not torch.cuda.is_available():
        raise RuntimeError("vLLM's IPC weight transfer needs the trained weights on a CUDA GPU, and torch sees none.")
    device = torch.cuda.current_device()
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    moved = [(name, torch.as_tensor(t).detach().to(f"cuda:{device}").contiguous()) for name, t in items]
    return moved, uuid, reduce_tensor


def _accepts(method: Callable[..., Any], keyword: str) -> bool:
    try:
        return keyword in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def send_ipc(llm: Any, update_info: dict[str, Any], initialized: bool) -> list[str]:
    """Run vLLM's weight-update protocol on `llm` with one IPC `update_info`; returns the `LLM`
    methods called, in order (the caller keeps `initialized` true after the first call)."""
    called = []
    if not initialized:
        llm.init_weight_transfer_engine({"init_info": {}})
        called.append("init_weight_transfer_engine")
    start = getattr(llm, "start_weight_update", None)
    if callable(start):
        start(**({"is_checkpoint_format": True} if _accepts(start, "is_checkpoint_format") else {}))
        called.append("start_weight_update")
    llm.update_weights({"update_info": update_info})
    called.append("update_weights")
    finish = getattr(llm, "finish_weight_update", None)
    if callable(finish):
        finish()
        called.append("finish_weight_update")
    return called
