"""The base of every configuration object: frozen, and strict about unknown keys."""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from suite.errors import SuiteError, quote
from suite.registry import did_you_mean

# The largest whole number any setting takes: a C int, which every library these settings reach
# (numpy seeds, thread counts, tensor sizes) can hold. Fields that a machine cannot hold as
# large say less (Measure.batch_sizes).
MAX_INT = 2**31 - 1


class NestedError(ValueError):
    """A validation error located below the field that raised it (`loc` is relative to it)."""

    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = tuple(loc), message
        super().__init__(message)


class Params(BaseModel):
    """Frozen and strict: an unknown key is an error naming the closest valid keys."""

    # allow_inf_nan: .inf and .nan are refused at validation, not found out when results are written.
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    hint = did_you_mean(str(key), list(cls.model_fields))
                    raise NestedError((), f"unknown key {quote(str(key), 80)}{hint}")
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's true is not the number 1, nor "5" the number 5, nor 1 the boolean true: each
        number, boolean and list of them must be written as one, and whole numbers fit MAX_INT."""
        check_scalar(value, cls.model_fields[info.field_name].annotation)
        return value


def scalar_kinds(annotation: Any) -> set[type]:
    """The scalar types an annotation admits (int, float, bool, str), through Optional, Union,
    Annotated and Literal; `object` for anything else (a model, a path, a mapping, Any)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(scalar_kinds(arg) for arg in typing.get_args(annotation)))
    if origin is Annotated:
        return scalar_kinds(typing.get_args(annotation)[0])
    if origin is Literal:
        return {type(arg) for arg in typing.get_args(annotation)}
    if annotation is type(None):
        return set()
    return {annotation} if annotation in (int, float, bool, str) else {object}


def check_scalar(value: Any, annotation: Any) -> None:
    """ValueError unless `value` is of a kind the annotation takes, exactly (bool is no int here)."""
    origin = typing.get_origin(annotation)
    if origin in (tuple, list) and isinstance(value, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        for item in value:
            check_scalar(item, args[0] if args else Any)
        return
    if origin in (typing.Union, types.UnionType) and isinstance(value, list):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) in (tuple, list):
                return check_scalar(value, arg)
    kinds = scalar_kinds(annotation)
    if object in kinds or value is None or not isinstance(value, (int, float, bool, str)):
        return  # not a scalar, or a field that takes more than scalars: pydantic decides
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError(f"expected {describe(kinds)}, not the boolean {str(value).lower()}")
    if isinstance(value, str) and str not in kinds and kinds:
        raise ValueError(f"expected {describe(kinds)}, got the string {quote(value)}")
    if not isinstance(value, bool) and isinstance(value, (int, float)) and kinds == {bool}:
        raise ValueError(f"expected true or false, got {quote(value)}")
    if type(value) is int and abs(value) > MAX_INT and (int in kinds or float in kinds):
        raise ValueError(f"{quote(value, 40)} is out of range (at most {MAX_INT:,})")


def describe(kinds: set[type]) -> str:
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    return " or ".join(names[k] for k in (int, float, bool, str) if k in kinds and not (k is int and float in kinds))


def existing_path(value: Any, info: ValidationInfo | None, kind: str = "file") -> Path:
    """A path resolved against the scenario file's folder, which must name an existing file or folder."""
    path = Path(((info and info.context) or {}).get("base_dir", ".")) / str(value)
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise ValueError(f"{kind} not found: {path}" if not path.exists() else f"not a {kind}: {path}")
    return path


ExistingFile = Annotated[Path, BeforeValidator(existing_path), PlainSerializer(str)]
ExistingDir = Annotated[Path, BeforeValidator(lambda v, info: existing_path(v, info, "folder")), PlainSerializer(str)]


# -- pydantic's errors as one line naming the key path -------------------------------------------
def first_error(exc: ValidationError) -> tuple[tuple, str]:
    """The first error of a pydantic ValidationError as (key path, one-line message)."""
    err = exc.errors(include_url=False)[0]
    loc, message = tuple(err["loc"]), err["msg"]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, NestedError):
        return loc + cause.loc, cause.message
    if err["type"] == "missing":
        return loc, "required key is missing"
    message = message.removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    message = re.sub(r"\btuple\b", "list", message)  # YAML has lists; the tuples are ours
    if err["type"] != "value_error" and isinstance(err.get("input"), (int, float, str, bool)):
        message += f" (got {quote(err['input'])})"
    return loc, message


def format_loc(loc: tuple) -> str:
    """('variants', 1, 'backend') -> 'variants[1].backend'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


@cache
def adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


def checked(cls: type, data: Any, path: Path | str) -> Any:
    """`data` as a `cls` record, every field's type checked; SuiteError naming the first bad field."""
    try:
        return adapter(cls).validate_python(data)
    except ValidationError as exc:
        loc, message = first_error(exc)
        raise SuiteError(f"{path}: {format_loc(loc) or 'the file'}: {message}") from None
