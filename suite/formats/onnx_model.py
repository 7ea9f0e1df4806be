"""A model in ONNX form: exported from torch once (or the user's own file, `from_file`), checked,
and passed between the methods that work on ONNX (ONNX Runtime's quantization) and the backends
that read it (onnxruntime, openvino, tensorrt). Needs the `onnx` extra: onnx, onnxscript (the
dynamo exporter) and onnxruntime."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from suite.build.weights import file_sha256, source_hash
from suite.errors import SuiteError, backend_message, first_line

INPUT, OUTPUT = "input", "output"
MAX_BATCH = 4096
PROTOBUF_LIMIT = 2**31
# Ops worth a row in the per-layer table, and the input that holds each one's weight.
WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "MatMul": 1, "MatMulInteger": 1,
                "QLinearMatMul": 3, "Gemm": 1, "Gather": 0}
QDQ = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    exporter: str  # "dynamo" or "torchscript" (torch's older exporter, when dynamo failed); "file": the user's
    export_s: float
    tokens: bool  # token ids (batch, seq); exports have both axes dynamic, else only the batch axis
    notes: tuple[str, ...] = ()
    # A TemporaryDirectory kept alive with it, where transformed copies are written (never next to a user's file).
    folder: Any = field(default=None, repr=False, compare=False)
    input_name: str = INPUT
    output_name: str = OUTPUT
    batch: int | None = None  # the batch size its input fixes; None: a dynamic batch axis
    source: Path | None = None  # the user's file it is, or was made from; None for suite's own exports

    def __deepcopy__(self, memo: dict) -> OnnxModel:
        return self  # immutable, and its files are never changed in place: a copy is the same model

    def __getstate__(self) -> dict:
        """Pickled (a variant's later processes load it, suite.run.run_folder): a file in its
        temporary folder, which ends with this process, travels as bytes; a user's file by path."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.folder is not None:
            state["folder"] = None
            state["file_bytes"] = {path.name: path.read_bytes() for path in self.files()}
        return state

    def __setstate__(self, state: dict) -> None:
        data = state.pop("file_bytes", None)
        if data is not None:  # into a temporary folder of this process's own
            folder = tempfile.TemporaryDirectory(prefix="suite-onnx-")
            for name, content in data.items():
                (Path(folder.name) / name).write_bytes(content)
            state = {**state, "path": Path(folder.name) / state["path"].name, "folder": folder}
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def derived(self, name: str, note: str) -> tuple[OnnxModel, Path]:
        """A file in its folder for a transformed copy (the caller writes it), with a note of how it was made."""
        path = Path(self.folder.name) / name if self.folder is not None else self.path.with_name(name)
        return replace(self, path=path, notes=self.notes + (note,)), path

    def derive(self, name: str, note: str, settings: dict, make: Callable[[Path], None]) -> OnnxModel:
        """A transformed copy (`make(path)` writes it, as `derived` says), or the same transform of
        the same file from the cache (keyed by this file's bytes, `name`, `settings` and the
        onnxruntime version): quantization and its calibration are not redone on every run."""
        result, path = self.derived(name, note)
        key = derived_key(self.files(), name, settings)
        if cached_copy(key, path, f"{name} made from {self.path.name}") is not None:
            return replace(result, notes=result.notes + (f"{name} copied from the cache ({key}.onnx)",))
        make(path)
        to_cache(key, path, {"made": name, "settings": settings})
        return result

    def load(self) -> Any:
        import onnx

        return onnx.load(str(self.path))

    def describe(self) -> dict[str, Any]:
        return {"exporter": self.exporter, "export_s": self.export_s, "onnx_notes": list(self.notes)}

    def files(self) -> list[Path]:
        """Its file and the external-data files it names (next to it; only a user's file has any:
        exports and the copies made from them are single files)."""
        return [self.path, *external_files(self.path)] if self.exporter == "file" else [self.path]

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files())

    def digest(self) -> str:
        """A hash of its bytes, external data included (the key of what is built from it)."""
        return file_sha256(*self.files())

    def footprint(self) -> dict:
        weights = weight_arrays(self.load())
        total = sum(a.size for a in weights.values())
        zeros = sum(int((a == 0).sum()) for a in weights.values())
        return {"size_bytes": self.size_bytes(), "weights": total, "sparsity": round(zeros / total, 6) if total else 0.0}

    def weight_count(self) -> int:
        return sum(a.size for a in weight_arrays(self.load()).values())

    def layer_table(self) -> list[dict]:
        return layer_table(self.load())

    def blame(self, exc: Exception, backend: str, doing: str) -> None:
        """Raise a one-line SuiteError for what `backend` said when `doing` ("load it", "run it on
        ...") this model, where it is the user's own file or a copy made of it (its quantized one):
        that is bad input, the backend's whole message kept as the error's details for the variant's
        log. For an export of suite's own, return: the caller re-raises (a bug or a backend crash)."""
        if self.source is None or isinstance(exc, SuiteError):
            return
        raise SuiteError(f"{self.source}: {backend} could not {doing}: {backend_message(str(exc))}",
                         details=f"{type(exc).__name__}: {exc}") from None


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
    to_cache(key, exported.path, {"exporter": exported.exporter, "export_s": exported.export_s,
                                  "tokens": exported.tokens, "notes": list(exported.notes)})
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
    from suite.build.weights import code_fingerprint, hash_tensors

    digest = hashlib.sha256()
    if not hash_tensors(model, digest):
        return None
    versions = {name: package_version(name) for name in ("torch", "onnx", "onnxscript")}
    parts = [repr(model), code_fingerprint(model), tuple(example.shape[1:]), str(example.dtype), versions,
             source_hash(sys.modules[__name__])]
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def derived_key(sources: list[Path], name: str, settings: dict) -> str:
    return hashlib.sha256(json.dumps([file_sha256(*sources), name, settings, package_version("onnxruntime"),
                                      source_hash(sys.modules[__name__])], sort_keys=True, default=str).encode()
                          ).hexdigest()[:24]


def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cache_files(key: str | None) -> tuple[Path, Path] | None:
    from suite.build.weights import cache_folder

    folder = cache_folder("onnx")
    return None if key is None or folder is None else (folder / f"{key}.onnx", folder / f"{key}.json")


def cached_copy(key: str | None, path: Path, what: str) -> dict | None:
    """The cache entry's record, its file copied to `path`; None on a miss. An entry whose file
    is not the one its record's digest names (a folder, truncated or changed bytes) is a miss,
    said in one line, and made again."""
    from suite.build.weights import say_about_cache, verified_entry

    files = cache_files(key)
    if files is None:
        return None
    record, problem = verified_entry(*files, key)
    if record is not None:
        try:
            shutil.copyfile(files[0], path)
            return record
        except OSError as exc:
            problem = f"cannot be copied ({exc.strerror})"
    if problem is not None:
        say_about_cache(f"cached ONNX file {files[0]} ({what}) {problem}: not used, made again")
    return None


def from_cache(key: str | None, path: Path, folder: Any) -> OnnxModel | None:
    """The cached export copied to `path`, or None on a miss (a damaged entry is a miss)."""
    record = cached_copy(key, path, "an export")
    try:
        note = f"export copied from the cache ({key}.onnx; exported in {record['export_s']:.1f} s)"
        return OnnxModel(path, record["exporter"], 0.0, bool(record["tokens"]), (*record["notes"], note), folder)
    except (KeyError, TypeError, ValueError):  # no record, or one of another shape: export again
        return None


def to_cache(key: str | None, source: Path, fields: dict) -> None:
    from suite.build.weights import write_entry

    files = cache_files(key)
    if files is not None:
        write_entry(*files, key, lambda path: shutil.copyfile(source, path), fields)


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


# -- the user's own file -------------------------------------------------------------------------
def from_file(path: Path, data: Any, output: str | None = None) -> OnnxModel:
    """The user's own ONNX file, read and checked against the dataset it will run on: one input
    whose dtype and fixed axes fit the dataset's samples, the scores (`output`, else the first
    output) of shape (batch, classes), external data next to it. Transformed
    copies (quantization) go to a folder of its own, not next to the file."""
    import onnx

    proto = read_proto(path)
    external_files(path, proto)  # refuses external data that is missing or outside the file's folder
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # the checker's own errors, and shape inference's
        raise SuiteError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {first_line(exc)})") from None
    inputs = fed_inputs(proto)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise SuiteError(f"{path}: the model takes {len(inputs)} inputs ({names}); suite feeds it one, the "
                         "dataset's samples")
    if not proto.graph.output:
        raise SuiteError(f"{path}: the model has no output")
    name, dtype, dims = input_signature(path, inputs[0])
    sample = data.test.x[:1]
    given = str(sample.dtype).replace("torch.", "")
    if dtype != given:
        raise SuiteError(f"{path}: input {name!r} takes {dtype}, but dataset {data.name!r} gives {given}")
    if len(dims) != sample.dim():
        raise SuiteError(f"{path}: input {name!r} has {len(dims)} axes {shape_text(dims)}, but dataset "
                         f"{data.name!r} gives {sample.dim()}: (batch, {', '.join(map(str, sample.shape[1:]))})")
    for axis, (size, wanted) in enumerate(zip(dims[1:], sample.shape[1:], strict=False), start=1):
        if size is not None and size != wanted:
            raise SuiteError(f"{path}: input {name!r} has shape {shape_text(dims)}, but dataset {data.name!r} "
                             f"gives samples of shape {tuple(sample.shape[1:])} (axis {axis}: {wanted}, not {size})")
    outputs = [o.name for o in proto.graph.output]
    if output is not None and output not in outputs:
        raise SuiteError(f"{path}: the model has no output {output!r} (its outputs: {', '.join(map(repr, outputs))})")
    chosen = output if output is not None else outputs[0]
    value = next(o for o in proto.graph.output if o.name == chosen)
    which = f"output {chosen!r}" + (f" (the first of {len(outputs)})" if output is None and len(outputs) > 1 else "")
    hint = ": name another with the model's `output`" if output is None and len(outputs) > 1 else ""
    if not value.type.HasField("tensor_type"):  # a sequence or map (scikit-learn's ZipMap gives one)
        kind = (value.type.WhichOneof("value") or "value of no type").removesuffix("_type").replace("_", " ")
        raise SuiteError(f"{path}: {which} is a {kind}, not a tensor; suite reads (batch, classes) scores{hint}")
    scores = value.type.tensor_type
    if scores.HasField("shape") and len(scores.shape.dim) != 2:
        dims = axis_sizes(scores.shape.dim)
        raise SuiteError(f"{path}: {which} has shape {shape_text(dims)}; suite reads it as (batch, classes) scores{hint}")
    notes = (f"the user's own ONNX file {path.name}",) + (
        (f"output {chosen!r} taken of {len(outputs)} ({', '.join(outputs)})",) if len(outputs) > 1 else ())
    return OnnxModel(path.resolve(), "file", 0.0, tokens=dtype.startswith("int") and len(dims) == 2, notes=notes,
                     folder=tempfile.TemporaryDirectory(prefix="suite-onnx-"), input_name=name,
                     output_name=chosen, batch=dims[0], source=path)


def read_proto(path: Path) -> Any:
    """The file's graph, without its external data; a one-line error when it is not ONNX."""
    import onnx

    size = path.stat().st_size
    if size >= PROTOBUF_LIMIT:  # protobuf cannot parse it, and reading it first would take `size` bytes of memory
        raise SuiteError(f"{path}: {size / 2**30:.1f} GiB, past protobuf's 2 GiB limit on one ONNX file: an ONNX "
                         "model that large keeps its weights in external-data files")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, or onnx's own for a file it cannot read
        raise SuiteError(f"{path}: not an ONNX model ({type(exc).__name__}: {first_line(exc)})") from None
    if not proto.graph.node or not proto.opset_import:  # empty or foreign bytes can parse as an empty model
        raise SuiteError(f"{path}: not an ONNX model (no graph or no opset in it)")
    return proto


def input_axes_of(path: Path) -> tuple[int | None, ...]:
    """The sizes the file fixes on its one input's axes (None: a dynamic axis); () where the file
    cannot be read or has other than one input (loading it then gives the error)."""
    return outline_of(path)[0]


def output_names_of(path: Path) -> tuple[str, ...] | None:
    """The file's output names, None where it cannot be read (loading it then gives the error)."""
    return outline_of(path)[1]


def outline_of(path: Path) -> tuple[tuple[int | None, ...], tuple[str, ...] | None]:
    """(input axes, output names), read once per file version: a scenario asks for each variant."""
    try:
        stat = path.stat()
    except OSError:
        return (), None
    return _outline(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _outline(path: Path, size: int, mtime_ns: int) -> tuple[tuple[int | None, ...], tuple[str, ...] | None]:
    try:
        proto = read_proto(path)
    except Exception:
        return (), None
    inputs = fed_inputs(proto)
    axes = tuple(axis_sizes(inputs[0].type.tensor_type.shape.dim)) if len(inputs) == 1 else ()
    return axes, tuple(o.name for o in proto.graph.output)


def fed_inputs(proto: Any) -> list[Any]:
    """The graph's inputs less its stored tensors (old files list their weights as inputs too)."""
    stored = {init.name for init in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in stored]


def axis_sizes(dims: Any) -> list[int | None]:
    """A shape's sizes, None for an axis that is dynamic (named, or of no fixed size)."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def input_signature(path: Path, value: Any) -> tuple[str, str, list[int | None]]:
    """An input's name, dtype (numpy's name) and axes (None: dynamic)."""
    import onnx

    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        raise SuiteError(f"{path}: input {value.name!r} is not a tensor of known rank")
    tensor = value.type.tensor_type
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    except (KeyError, ValueError, TypeError):
        raise SuiteError(f"{path}: input {value.name!r} has an element type suite cannot feed ({tensor.elem_type})") from None
    dims = axis_sizes(tensor.shape.dim)
    return value.name, dtype, dims


def shape_text(dims: list[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def external_files(path: Path, proto: Any = None) -> list[Path]:
    """The external-data files the model's tensors name, each checked to exist inside the file's
    folder and to hold the bytes the tensor says (a crafted file may name any path)."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    proto = proto if proto is not None else read_proto(path)
    folder = path.resolve().parent
    found: dict[Path, None] = {}
    for tensor in _get_all_tensors(proto):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        where = (folder / info.location).resolve()
        if not info.location or Path(info.location).is_absolute() or not where.is_relative_to(folder):
            raise SuiteError(f"{path}: tensor {tensor.name!r} names external data {info.location!r} outside the "
                             "model's folder: refused")
        if not where.is_file():
            raise SuiteError(f"{path}: tensor {tensor.name!r} needs external data file {info.location!r} next to it, "
                             "which is missing")
        end = (info.offset or 0) + (info.length or 0)
        if end > where.stat().st_size:
            raise SuiteError(f"{path}: tensor {tensor.name!r} reads bytes up to {end} of {info.location!r}, which "
                             f"holds {where.stat().st_size}: the file is truncated")
        found[where] = None
    return list(found)
