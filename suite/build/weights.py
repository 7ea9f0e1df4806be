"""Where a model's weights come from: the user's checkpoint, the training cache, or training.

Trained checkpoints are cached outside the repository (the user cache folder) under a key of
everything that determines them, so a second run loads instead of retraining.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from suite.errors import SuiteError, first_line, quote
from suite.results import atomic_write_text, discard


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "suite"


def cache_root(cache_dir: Path | str | None) -> Path:
    """A run's cache folder: --cache-dir, else this machine's user cache (default_cache_dir)."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


# The run's cache folder (`--cache-dir`, else default_cache_dir()), set by the runner for the
# caches that live below the plugins (ONNX exports): None, as in a bare library call, caches nothing.
_cache_root: Path | None = None
# Where a damaged cache entry is reported (the run's progress log), set with the root.
_say: Callable[[str], None] | None = None


def use_cache_root(root: Path | None, say: Callable[[str], None] | None = None) -> None:
    global _cache_root, _say
    _cache_root = None if root is None else Path(root)
    _say = say


def say_about_cache(message: str) -> None:
    if _say is not None:
        _say(message)


def cache_folder(kind: str) -> Path | None:
    """CACHE_ROOT/KIND, or None when no run has set a cache root."""
    return None if _cache_root is None else _cache_root / kind


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def code_fingerprint(model: Any) -> dict[str, str]:
    """What the weights' meaning depends on beyond parameters: the source of every class in the model
    that is not from an installed package, the versions of the packages the others come from, and
    the training loop's source. A change to any of them trains anew rather than loading stale weights."""
    import suite.build.training

    # keyed as before training.py moved into build/, so that cached checkpoints stay valid
    fingerprint = {"suite.training": source_hash(suite.build.training)}
    for module in model.modules():
        origin = sys.modules.get(type(module).__module__)
        package = type(module).__module__.split(".")[0]
        try:
            fingerprint[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            fingerprint[type(module).__module__] = source_hash(origin)
    return fingerprint


def hash_tensors(model: Any, digest: Any) -> bool:
    """Feed every tensor of the model's state_dict (name, dtype, shape, bytes) into a hashlib
    digest; False where one cannot be read as bytes (quantized or opaque tensors)."""
    import torch

    try:
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    except (RuntimeError, TypeError, AttributeError):
        return False
    return True


def source_hash(module: Any) -> str:
    try:
        return hashlib.sha256(Path(inspect.getfile(module)).read_bytes()).hexdigest()[:16]
    except (TypeError, OSError):
        return "unknown"


def load_checkpoint(model: Any, path: Path) -> None:
    """Load a state_dict file into `model`; any mismatch is a one-line SuiteError."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise SuiteError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {first_line(exc)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SuiteError(f"{path}: expected a state_dict (a mapping of tensors), got {type(state).__name__}")
    for name, tensor in state.items():  # NaN means nothing in any weight: diverged training, or damage
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and bool(torch.isnan(tensor).any()):
            raise SuiteError(f"{path}: tensor {quote(name, 80)} holds NaN (training that diverged, or a damaged file)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise SuiteError(f"{path}: does not fit the model: {_first_problem(exc)}") from None


# -- cache entries: a data file and its record, verified by digest before use -------------------
MAX_RECORD_BYTES = 1 << 20


def file_sha256(*paths: Path) -> str:
    """The SHA-256 of the files' bytes, one after another, read in blocks."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def verified_entry(data: Path, record: Path, key: str) -> tuple[dict | None, str | None]:
    """(the entry's record, None) when `data` holds exactly the bytes its record's digest names
    and the record is the one written for `key`; (None, what is wrong) for a damaged entry (a
    directory, truncated or flipped bytes, a record of another shape or key, another entry's data
    swapped in); (None, None) on a plain miss."""
    if not (os.path.lexists(data) or os.path.lexists(record)):
        return None, None
    if not (data.is_file() and record.is_file()):
        return None, "is not a pair of files"
    try:
        if record.stat().st_size > MAX_RECORD_BYTES:
            return None, "has a record too large to be one"
        found = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None, "has a record that is not JSON"
    if not isinstance(found, dict) or not isinstance(found.get("sha256"), str) or type(found.get("bytes")) is not int:
        return None, "has a record with no digest (damaged, or written by an older suite)"
    if found.get("key") != key:
        return None, "has the record of another entry"
    if data.stat().st_size != found["bytes"] or file_sha256(data) != found["sha256"]:
        return None, "does not hold the bytes its record's digest names"
    return found, None


def write_entry(data: Path, record: Path, key: str, write: Callable[[Path], None], fields: dict) -> None:
    """`write(path)` the data, then its record with `fields`, the key, the size and the digest;
    each file replaced whole (atomically), whatever stood at its path."""
    discard(data, record)
    data.parent.mkdir(parents=True, exist_ok=True)
    tmp = data.with_name(data.name + f".{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, data)
    finally:
        if tmp.exists():
            tmp.unlink()
    atomic_write_text(record, json.dumps({**fields, "key": key, "bytes": data.stat().st_size,
                                          "sha256": file_sha256(data)}, indent=1, default=str))


SEAL = "done"  # a cached folder's last file: the manifest of the others


def folder_manifest(folder: Path) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file in `folder` but its seal."""
    return {str(path.relative_to(folder)): [path.stat().st_size, file_sha256(path)]
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != SEAL}


def seal_folder(folder: Path, note: str) -> None:
    """Mark a cached folder whole: its seal lists every file's size and digest."""
    (folder / SEAL).write_text(json.dumps({"note": note, "files": folder_manifest(folder)}, indent=1) + "\n")


def sealed_folder(folder: Path, what: str) -> bool:
    """Whether a cached folder (made whole and sealed) is there and still holds the files its seal
    names; a damaged one is said in one line and removed (the caller makes it again)."""
    if not os.path.lexists(folder):
        return False
    seal = folder / SEAL
    try:
        record = json.loads(seal.read_text(encoding="utf-8")) if seal.stat().st_size <= MAX_RECORD_BYTES else None
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        problem = "has no seal listing its files (damaged, or made by an older suite)"
    elif folder.is_symlink() or folder_manifest(folder) != record["files"]:
        problem = "does not hold the files its seal names"
    else:
        return True
    say_about_cache(f"cached {what} {folder} {problem}: not used, made again")
    discard(folder)
    return False


class CheckpointCache:
    def __init__(self, root: Path, say: Callable[[str], None] = lambda message: None):
        self.root = Path(root) / "checkpoints"
        self.say = say

    def paths(self, model_name: str, key: str) -> tuple[Path, Path]:
        stem = self.root / f"{model_name}-{key}"
        return stem.with_suffix(".pt"), stem.with_suffix(".json")

    def load(self, model: Any, model_name: str, key: str) -> dict | None:
        """The training record of a cached checkpoint loaded into `model`, or None on a miss; a
        damaged entry is a miss, said in one line (and trained again, and overwritten)."""
        weights, record_path = self.paths(model_name, key)
        found, problem = verified_entry(weights, record_path, key)
        if found is not None and not isinstance(found.get("training"), dict):
            found, problem = None, "has a record with no training in it"
        if found is not None:
            try:
                load_checkpoint(model, weights)
                return found["training"]
            except SuiteError as exc:
                problem = f"does not load ({first_line(exc)})"
        if problem is not None:
            self.say(f"{model_name}: cached checkpoint {weights} {problem}: not used, made again")
        return None

    def save(self, model: Any, model_name: str, key: str, record: dict) -> Path:
        import torch

        weights, record_path = self.paths(model_name, key)
        write_entry(weights, record_path, key, lambda path: torch.save(model.state_dict(), path), {"training": record})
        return weights


def built_folder(kind: str, what: str, key: str, make: Callable[[Path], None]) -> tuple[Path, str]:
    """A folder of files a backend builds from a model (a converted graph), from the cache under
    `key` or made now by `make(folder)` in a staging folder, sealed and moved into place whole
    (another process that made it first wins). Returns (folder, 'from the cache (...)' or 'built
    in N s')."""
    import shutil
    import tempfile
    import time

    root = cache_folder(kind) or Path(tempfile.gettempdir()) / f"suite-{kind}"
    folder = root / key
    if sealed_folder(folder, what):
        return folder, f"from the cache ({folder.name})"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        start = time.perf_counter()
        make(staging)
        note = f"built in {time.perf_counter() - start:.1f} s"
        seal_folder(staging, note)
        try:
            staging.rename(folder)
        except OSError:  # another process made it first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, note


def obtain(model: Any, name: str, checkpoint: Path | None, key_parts: dict, cache: CheckpointCache,
           train: Callable[[], dict]) -> dict:
    """Fill `model` with weights; return a record of where they came from."""
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
        return {"source": "checkpoint", "path": str(checkpoint)}
    key = cache_key(key_parts)
    cached = cache.load(model, name, key)
    if cached is not None:
        return {"source": "cache", "path": str(cache.paths(name, key)[0]), "training": cached}
    record = train()
    path = cache.save(model, name, key, record)
    return {"source": "trained", "path": str(path), "training": record}



def _first_problem(exc: RuntimeError) -> str:
    """torch's load_state_dict message, reduced to its first specific line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 else lines[0] if lines else "mismatch"
    return detail.rstrip(".")[:300]
