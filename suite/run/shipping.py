"""What one node built, shipped to the others: the files a task added to the cache folder
(trained checkpoints, ONNX exports, converted decoders) go back as a bundle that stays in Ray's
object store, with a small manifest the head keeps; a later task on another node lays down the
files its own cache lacks before it builds anything, so a checkpoint is trained once per cluster,
not once per node. Where the nodes share the cache folder (one machine, a shared file system)
every file is already there and nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Manifest = dict[str, int]  # relative path -> size in bytes


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, modification time)} of the finished files under `root` (a file
    being written, named '.NAME.tmp' by the atomic writers, is not one)."""
    if not root.is_dir():
        return {}
    return {str(path.relative_to(root)): (stat.st_size, stat.st_mtime_ns)
            for path in root.rglob("*") if path.is_file() and not path.name.startswith(".")
            for stat in (path.stat(),)}


def bundle(root: Path, before: dict[str, tuple[int, int]]) -> tuple[Manifest, dict[str, bytes]]:
    """The files added or changed under `root` since `before`: their manifest and their bytes."""
    changed = {rel: size for rel, (size, mtime) in snapshot(root).items() if before.get(rel) != (size, mtime)}
    files = {}
    for rel in changed:
        try:
            files[rel] = (root / rel).read_bytes()
        except OSError:  # removed meanwhile by another task's cache: not ours to ship
            continue
    return {rel: len(data) for rel, data in files.items()}, files


def lay_down(root: Path, shipped: list[tuple[Manifest, Any]], fetch: Callable[[Any], dict[str, bytes]]) -> int:
    """Write into `root` the shipped files it lacks (or holds at another size); a bundle is fetched
    only when it has such a file. Returns the number of files written."""
    from suite.results import atomic_write_bytes

    written = 0
    for manifest, ref in shipped:
        missing = [rel for rel, size in manifest.items() if not is_file_of_size(root / rel, size)]
        if not missing:
            continue
        files = fetch(ref)
        for rel in missing:
            target = (root / rel).resolve()
            if root.resolve() in target.parents and rel in files:
                atomic_write_bytes(target, files[rel])
                written += 1
    return written


def is_file_of_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False
