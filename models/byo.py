"""Bringing your own model: a TorchScript file, a torch.export program (.pt2), a Python factory, or a
local Hugging Face model folder (a sequence classifier, loaded offline).

These models come with their own weights: suite does not train them. Name a dataset for them in
the scenario (your own data, or `random` inputs of the right shape for latency alone).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from pydantic import field_validator

from models.spec import ModelSpec
from suite.config.params import ExistingDir, ExistingFile, Params
from suite.errors import SuiteError, first_line


class FileParams(Params):
    path: ExistingFile


class FolderParams(Params):
    path: ExistingDir


class FactoryParams(Params):
    factory: str  # "package.module:function", importable from the current environment
    kwargs: dict[str, Any] = {}

    @field_validator("factory")
    @classmethod
    def _module_colon_attr(cls, value: str) -> str:
        if value.count(":") != 1 or not all(value.split(":")):
            raise ValueError(f"expected 'package.module:function', got {value!r}")
        return value


def load_torchscript(params: FileParams, data):
    import torch

    try:
        return torch.jit.load(str(params.path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise SuiteError(f"{params.path}: not a TorchScript file ({first_line(exc)})") from None


class ExportedParams(FileParams):
    # torch.export.load unpickles the weights and constants a file marks as pickled (with
    # torch.load(weights_only=False) and pickle.loads), which runs any code a crafted file
    # carries. Unless this is true, those loads are limited to tensors and plain values.
    trust_code: bool = False


class ArbitraryPickle(Exception):
    """A pickled Python object met while loading with trust_code off."""


def load_exported(params: ExportedParams, data):
    import torch

    try:
        with nullcontext() if params.trust_code else tensors_only_unpickling():
            return torch.export.load(str(params.path)).module()
    except ArbitraryPickle as exc:
        raise SuiteError(f"{params.path}: refused: it holds pickled Python objects ({exc}), and loading them "
                         "runs whatever code they carry; set trust_code: true on the model if you made this file") from None
    except Exception as exc:  # torch.export.load raises many types for a foreign file
        raise SuiteError(f"{params.path}: not a torch.export program ({type(exc).__name__}: {first_line(exc)})") from None


@contextmanager
def tensors_only_unpickling() -> Iterator[None]:
    """For the length of the block, torch.load takes only tensors and plain values (weights_only),
    and the other unpicklers torch.export.load may call refuse outright."""
    import pickle

    import torch

    real_load = torch.load

    def weights_only(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_load(*args, **{**kwargs, "weights_only": True})
        except pickle.UnpicklingError:
            raise ArbitraryPickle("a weight or constant that is not a plain tensor") from None

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ArbitraryPickle("a pickled constant")  # torch.load above is the only unpickler allowed

    patches = [(torch, "load", weights_only), (pickle, "loads", refuse), (pickle, "load", refuse),
               (torch._C, "_pickle_load_obj", refuse)]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def call_factory(params: FactoryParams, data):
    module_name, attr = params.factory.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SuiteError(f"model.factory: {params.factory!r}: cannot import it ({first_line(exc)})") from None
    if not callable(factory):
        raise SuiteError(f"model.factory: {params.factory!r} is a {type(factory).__name__}, not a function or class")
    try:
        inspect.signature(factory).bind(**params.kwargs)
    except TypeError as exc:  # a keyword it does not take, or one it needs that is missing
        raise SuiteError(f"model.kwargs: {params.factory!r} does not take them: {first_line(exc)}") from None
    except ValueError:  # no signature to read (a builtin): the call itself will tell
        pass
    model = factory(**params.kwargs)
    if not hasattr(model, "state_dict") or not callable(model):
        raise SuiteError(f"model.factory: {params.factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_hf_folder(params: FolderParams, data):
    """A folder written by save_pretrained: read with AutoModelForSequenceClassification, offline."""
    try:
        from transformers import AutoModelForSequenceClassification
    except ImportError:
        raise SuiteError("a Hugging Face folder needs transformers: pip install transformers") from None
    from models.nets.bert import TextClassifier

    try:
        check_weights_cover_config(params.path)
        model = AutoModelForSequenceClassification.from_pretrained(str(params.path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{params.path}: not a Hugging Face model folder ({first_line(exc)})") from None
    return TextClassifier(model, pad_id=model.config.pad_token_id or 0)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
MIN_BYTES_PER_PARAMETER = 0.45  # 4-bit weights with their scales take more than this


def check_weights_cover_config(folder: Any, causal: bool = False) -> None:
    """A config.json of a few bytes can describe billions of parameters, which from_pretrained
    would allocate (and fill at random where the weight files lack them). Count the parameters
    the config describes on the meta device (no memory) and refuse a folder whose weight files
    are too small to hold them."""
    from pathlib import Path

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    kind = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    with torch.device("meta"):
        described = sum(p.numel() for p in kind.from_config(config).parameters())
    stored = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    if described * MIN_BYTES_PER_PARAMETER > stored:
        raise SuiteError(f"{folder}: config.json describes {described:,} parameters, but its weight files hold "
                         f"{stored:,} bytes: too few for them (a damaged folder, or weights missing)")


TORCHSCRIPT = ModelSpec(description="your TorchScript file (torch.jit.save), weights included",
                        Params=FileParams, build=load_torchscript, dataset=None, train=None,
                        provides_weights=True)
EXPORTED = ModelSpec(description="your torch.export program (.pt2, torch.export.save), weights included",
                     Params=ExportedParams, build=load_exported, dataset=None, train=None, provides_weights=True)
HF_FOLDER = ModelSpec(description="your local Hugging Face sequence-classification folder (save_pretrained)",
                      Params=FolderParams, build=load_hf_folder, dataset=None, train=None, provides_weights=True)
FACTORY = ModelSpec(description="your Python factory 'module:function' returning an nn.Module, with its kwargs",
                    Params=FactoryParams, build=call_factory, dataset=None, train=None, provides_weights=True)
