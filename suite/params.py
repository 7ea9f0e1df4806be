"""The base of every configuration object: frozen, and strict about unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationInfo, model_validator

from suite.registry import did_you_mean


class NestedError(ValueError):
    """A validation error located below the field that raised it (`loc` is relative to it)."""

    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = tuple(loc), message
        super().__init__(message)


class Params(BaseModel):
    """Frozen and strict: an unknown key is an error naming the closest valid keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    hint = did_you_mean(str(key), list(cls.model_fields))
                    raise NestedError((), f"unknown key {str(key)!r}{hint}")
        return data


def existing_path(value: Any, info: ValidationInfo | None, kind: str = "file") -> Path:
    """A path resolved against the scenario file's folder, which must name an existing file or folder."""
    path = Path(((info and info.context) or {}).get("base_dir", ".")) / str(value)
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise ValueError(f"{kind} not found: {path}" if not path.exists() else f"not a {kind}: {path}")
    return path


ExistingFile = Annotated[Path, BeforeValidator(existing_path), PlainSerializer(str)]
ExistingDir = Annotated[Path, BeforeValidator(lambda v, info: existing_path(v, info, "folder")), PlainSerializer(str)]
