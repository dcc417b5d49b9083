"""Where a model named by a string lives, checked before anything loads: an existing local file or
folder, or a Hugging Face hub id that is in the local cache or on a hub that answers.

A missing model otherwise fails slowly or obscurely: a path typo is taken for a hub id, and a hub id
on an offline machine makes transformers retry the hub for about a minute before it reports
something else. `check_model_source` says what is wrong at once, in one line. It imports neither
torch nor transformers (only `huggingface_hub`, and only for a hub id).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Seconds to wait for the hub when a hub id is not cached locally.
HUB_TIMEOUT_S = 5.0

# A hub id: "name" or "org/name" (letters, digits, '-', '_', '.').
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_TRUE = {"1", "true", "yes", "on"}


def looks_like_path(model: str) -> bool:
    """True when `model` is written as a file-system path (so never a hub id): it starts with '/',
    './', '../', '~' or a Windows drive, uses backslashes, has more than one '/', or ends with '.gguf'."""
    return (
        model.startswith(("/", "./", "../", "~", "\\", ".\\"))
        or re.match(r"^[A-Za-z]:[\\/]", model) is not None
        or "\\" in model
        or model.count("/") > 1
        or model.lower().endswith(".gguf")
    )


def check_model_source(model: str, *, gguf_file: str | None = None, timeout: float = HUB_TIMEOUT_S) -> str:
    """Where `model` (and `gguf_file` inside it, if given) is: "local" (an existing file or folder),
    "cached" (a hub id in the local Hugging Face cache) or "hub" (a hub id the hub knows).

    Raises, with a one-line message:
    - FileNotFoundError for a path that does not exist ("no such file or folder"), a name that is
      neither a path nor a hub id, or a hub id the hub answers it does not have;
    - ConnectionError for a hub id that is not cached when the hub cannot be reached (offline mode
      set by HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, or no answer within `timeout` seconds).
    """
    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"model must be a non-empty string (a path or hub id), got {model!r}.")
    path = Path(model).expanduser()
    if path.exists():
        if gguf_file is not None and path.is_dir() and not (path / gguf_file).is_file():
            raise FileNotFoundError(f"model file {str(path / gguf_file)!r}: no such file or folder.")
        return "local"
    if looks_like_path(model) or not _HUB_ID.match(model):
        where = "" if str(path.absolute()) == model else f" ({path.absolute()})"
        raise FileNotFoundError(f"model {model!r}: no such file or folder{where}.")
    if _in_cache(model, gguf_file):
        return "cached"
    where = f"is not cached locally (no such folder here, nor in the Hugging Face cache {_cache_dir()})"
    if offline_mode():
        raise ConnectionError(
            f"model {model!r} {where} and the hub cannot be reached (offline mode: HF_HUB_OFFLINE or "
            f"TRANSFORMERS_OFFLINE is set); download it where the hub is reachable (`hf download {model}`) or "
            "give a local path."
        )
    from huggingface_hub import model_info
    from huggingface_hub.utils import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        model_info(model, timeout=timeout)
    except GatedRepoError:
        return "hub"  # the loader says how to get access
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"model {model!r}: no such file or folder, and no such model on the Hugging Face hub (a private "
            "model needs a token: `hf auth login`)."
        ) from None
    except HfHubHTTPError:
        return "hub"  # the hub answered (e.g. rate limits): the loader reports what it says
    except Exception as error:  # no answer: DNS, refused connection, timeout, proxy
        reason = (str(error).splitlines() or [""])[0][:120]
        raise ConnectionError(
            f"model {model!r} {where} and the hub cannot be reached ({type(error).__name__}: {reason}); "
            f"download it where the hub is reachable (`hf download {model}`) or give a local path."
        ) from None
    return "hub"


def offline_mode() -> bool:
    """True when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set (read now, not at import)."""
    if any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _in_cache(repo_id: str, filename: str | None) -> bool:
    """True when a snapshot of `repo_id` (holding `filename`, if given) is in the local cache."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, or a malformed cache entry
        return False
    return filename is None or (Path(folder) / filename).is_file()


def _cache_dir() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "~/.cache/huggingface/hub"
    return str(constants.HF_HUB_CACHE)
