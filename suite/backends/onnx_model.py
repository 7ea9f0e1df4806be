"""A model in ONNX form: exported from torch once, checked, and passed between the methods that
work on ONNX (ONNX Runtime's quantization) and the backends that read it (onnxruntime, openvino,
tensorrt). Needs the `onnx` extra: onnx, onnxscript (the dynamo exporter) and onnxruntime."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from suite.weights import source_hash

INPUT, OUTPUT = "input", "output"
MAX_BATCH = 4096
# Ops worth a row in the per-layer table, and the input that holds each one's weight.
WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "MatMul": 1, "MatMulInteger": 1,
                "QLinearMatMul": 3, "Gemm": 1, "Gather": 0}
QDQ = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    exporter: str  # "dynamo" or "torchscript" (torch's older exporter, when dynamo failed)
    export_s: float
    tokens: bool  # token ids (batch, seq), both axes dynamic; else only the batch axis is
    notes: tuple[str, ...] = ()
    folder: Any = field(default=None, repr=False, compare=False)  # a TemporaryDirectory kept alive with it

    def derived(self, name: str, note: str) -> tuple[OnnxModel, Path]:
        """A sibling file for a transformed copy (the caller writes it), with a note of how it was made."""
        path = self.path.with_name(name)
        return replace(self, path=path, notes=self.notes + (note,)), path

    def derive(self, name: str, note: str, settings: dict, make: Callable[[Path], None]) -> OnnxModel:
        """A transformed copy (`make(path)` writes it, as `derived` says), or the same transform of
        the same file from the cache (keyed by this file's bytes, `name`, `settings` and the
        onnxruntime version): quantization and its calibration are not redone on every run."""
        result, path = self.derived(name, note)
        files = cache_files(derived_key(self.path, name, settings))
        if files is not None and files[0].is_file():
            try:
                shutil.copyfile(files[0], path)
                return replace(result, notes=result.notes + (f"{name} copied from the cache ({files[0].name})",))
            except OSError:  # a damaged entry is a miss
                pass
        make(path)
        if files is not None:
            from suite.results import atomic_write_bytes, atomic_write_text

            atomic_write_bytes(files[0], path.read_bytes())
            atomic_write_text(files[1], json.dumps({"made": name, "settings": settings}, indent=1, default=str))
        return result

    def load(self) -> Any:
        import onnx

        return onnx.load(str(self.path))

    def describe(self) -> dict[str, Any]:
        return {"exporter": self.exporter, "export_s": self.export_s, "onnx_notes": list(self.notes)}

    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def footprint(self) -> dict:
        weights = weight_arrays(self.load())
        total = sum(a.size for a in weights.values())
        zeros = sum(int((a == 0).sum()) for a in weights.values())
        return {"size_bytes": self.size_bytes(), "weights": total, "sparsity": round(zeros / total, 6) if total else 0.0}

    def weight_count(self) -> int:
        return sum(a.size for a in weight_arrays(self.load()).values())

    def layer_table(self) -> list[dict]:
        return layer_table(self.load())


def to_onnx(model: Any, example: Any) -> OnnxModel:
    """Export a torch module with a dynamic batch axis (and sequence axis for token ids), then
    run ONNX's full checker; or copy the same export from the cache (weights.cache_folder("onnx"),
    keyed by export_key). An OnnxModel is returned as it is."""
    if isinstance(model, OnnxModel):
        return model
    folder = tempfile.TemporaryDirectory(prefix="suite-onnx-")
    path = Path(folder.name) / "model.onnx"
    key = export_key(model, example)
    cached = from_cache(key, path, folder)
    if cached is not None:
        return cached
    exported = export(model, example, path, folder)
    to_cache(key, exported)
    return exported


def export(model: Any, example: Any, path: Path, folder: Any) -> OnnxModel:
    import torch

    tokens = example.dim() == 2 and not example.is_floating_point()
    example = torch.cat([example[:1]] * 4)  # batch 1 would be specialised as a constant
    model.eval()
    start = time.perf_counter()
    try:
        _export_dynamo(model, example, tokens, path)
        fixed = _fixed_axes(path, tokens)
        if fixed:  # seen in torch 2.13: a second LSTM export in one process fixed the sequence length
            raise RuntimeError(f"the export fixed input axes {fixed} that should vary")
        exporter, notes = "dynamo", ()
    except Exception as exc:  # the dynamo exporter fails on some models: fall back, and say why
        _export_torchscript(model, example, tokens, path)
        exporter, notes = "torchscript", (f"dynamo exporter failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",)
    export_s = round(time.perf_counter() - start, 3)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    return OnnxModel(path, exporter, export_s, tokens, notes, folder)


def export_key(model: Any, example: Any) -> str | None:
    """What an export depends on: the module's weights and buffers (bytes), its structure (repr)
    and code (weights.code_fingerprint), the input's per-sample shape and dtype, this file (the
    export settings) and the torch, onnx and onnxscript versions. None where the weights cannot be
    read as bytes: such a model is exported every time."""
    from suite.weights import code_fingerprint, hash_tensors

    digest = hashlib.sha256()
    if not hash_tensors(model, digest):
        return None
    versions = {name: package_version(name) for name in ("torch", "onnx", "onnxscript")}
    parts = [repr(model), code_fingerprint(model), tuple(example.shape[1:]), str(example.dtype), versions,
             source_hash(sys.modules[__name__])]
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def derived_key(source: Path, name: str, settings: dict) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    digest.update(json.dumps([name, settings, package_version("onnxruntime"), source_hash(sys.modules[__name__])],
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cache_files(key: str | None) -> tuple[Path, Path] | None:
    from suite.weights import cache_folder

    folder = cache_folder("onnx")
    return None if key is None or folder is None else (folder / f"{key}.onnx", folder / f"{key}.json")


def from_cache(key: str | None, path: Path, folder: Any) -> OnnxModel | None:
    """The cached export copied to `path`, or None on a miss (a damaged entry is a miss)."""
    files = cache_files(key)
    if files is None or not (files[0].is_file() and files[1].is_file()):
        return None
    try:
        record = json.loads(files[1].read_text(encoding="utf-8"))
        shutil.copyfile(files[0], path)
        note = f"export copied from the cache ({files[0].name}; exported in {record['export_s']:.1f} s)"
        return OnnxModel(path, record["exporter"], 0.0, record["tokens"], (*record["notes"], note), folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def to_cache(key: str | None, exported: OnnxModel) -> None:
    from suite.results import atomic_write_bytes, atomic_write_text

    files = cache_files(key)
    if files is None:
        return
    atomic_write_bytes(files[0], exported.path.read_bytes())
    atomic_write_text(files[1], json.dumps({"exporter": exported.exporter, "export_s": exported.export_s,
                                            "tokens": exported.tokens, "notes": list(exported.notes)}, indent=1))


def _fixed_axes(path: Path, tokens: bool) -> list[int]:
    """The input axes that should be dynamic (batch; sequence for tokens) but have a fixed size."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [axis for axis in ((0, 1) if tokens else (0,)) if not dims[axis].dim_param]


def _export_dynamo(model: Any, example: Any, tokens: bool, path: Path) -> None:
    import torch

    axes = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    if tokens:
        axes[1] = torch.export.Dim("seq", min=2, max=example.shape[1] * 64)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # it lists every torchvision op it cannot find
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations, raised inside the exporter
        program = torch.onnx.export(model, (example,), dynamo=True, external_data=False, verbose=False,
                                    dynamic_shapes=(axes,), input_names=[INPUT], output_names=[OUTPUT])
    program.save(str(path), external_data=False)


def _export_torchscript(model: Any, example: Any, tokens: bool, path: Path) -> None:
    import torch

    axes = {INPUT: {0: "batch", 1: "seq"} if tokens else {0: "batch"}, OUTPUT: {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=axes)


def weight_arrays(proto: Any) -> dict[str, Any]:
    """Stored tensors that are weights: not quantization scales or zero points, not shape
    constants (the same notion of "weights" as for torch modules)."""
    from onnx import numpy_helper

    qdq_params = {name for node in proto.graph.node if node.op_type in QDQ for name in node.input[1:]}
    arrays = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer if init.name not in qdq_params}
    # int8 weights, int32 biases of quantized layers; int64 tensors are shapes and indices.
    return {name: a for name, a in arrays.items() if a.dtype.kind == "f" or (a.dtype.kind in "iu" and a.dtype.itemsize <= 4)}


def layer_table(proto: Any) -> list[dict]:
    """One row per convolution, matrix product and embedding lookup that has a stored weight:
    the weight's precision, and whether its input arrives quantized."""
    stored = weight_arrays(proto)
    made_by = {out: node for node in proto.graph.node for out in node.output}
    rows = []
    for node in proto.graph.node:
        index = WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        weight = _source(node.input[index], made_by)
        if weight not in stored:
            continue
        data = node.input[1] if node.op_type == "Gather" else node.input[0]
        rows.append({"layer": node.name, "type": node.op_type, "precision": str(stored[weight].dtype),
                     "input": "ids" if node.op_type == "Gather" else _input_precision(data, node, made_by),
                     "weights": int(stored[weight].size),
                     "sparsity": round(float((stored[weight] == 0).mean()), 4)})
    return rows


def _source(name: str, made_by: dict) -> str:
    """The stored tensor behind `name`, looking through DequantizeLinear and Transpose."""
    node = made_by.get(name)
    while node is not None and node.op_type in ("DequantizeLinear", "Transpose", "Reshape", "Cast"):
        name = node.input[0]
        node = made_by.get(name)
    return name


def _input_precision(name: str, node: Any, made_by: dict) -> str:
    if node.op_type.startswith("QLinear") or node.op_type.endswith("Integer"):
        return "int8"
    source = made_by.get(name)
    return "int8" if source is not None and source.op_type == "DequantizeLinear" else "float"
