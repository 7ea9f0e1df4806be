"""The user's own images: one sub-folder per class, read with Pillow and resized."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PositiveInt

from suite.config.params import ExistingDir
from suite.datasets.base import Dataset, DatasetSpec, SplitParams, split_arrays
from suite.errors import SuiteError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageFolderParams(SplitParams):
    path: ExistingDir
    size: tuple[PositiveInt, PositiveInt] = (32, 32)  # height, width after resizing
    mode: Literal["L", "RGB"] = "RGB"  # grey levels (1 channel) or colour (3 channels)


def load(params: ImageFolderParams) -> Dataset:
    import numpy as np

    classes = sorted(p.name for p in params.path.iterdir() if p.is_dir())
    files = [(f, label) for label, name in enumerate(classes) for f in sorted((params.path / name).iterdir())
             if f.suffix.lower() in EXTENSIONS]
    if len(classes) < 2 or not files:
        raise SuiteError(f"{params.path}: need one sub-folder of images per class, at least two classes "
                         f"(found {len(classes)} sub-folders, {len(files)} images)")
    x = np.stack([_read(f, params) for f, _ in files])
    y = np.array([label for _, label in files])
    train, val, test = split_arrays(x, y, params)
    return Dataset(name="image_folder",
                   source=f"user data: {params.path} ({len(files)} images, classes {', '.join(classes)})",
                   train=train, val=val, test=test, num_classes=len(classes))


def _read(path: Path, params: ImageFolderParams):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert(params.mode).resize((params.size[1], params.size[0]))
    except (OSError, UnidentifiedImageError) as exc:
        raise SuiteError(f"{path}: cannot read as an image ({exc})") from None
    pixels = np.asarray(image, dtype="float32") / 255.0
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # channels first


SPEC = DatasetSpec(
    description="your images: one sub-folder per class, read with Pillow, resized, stratified split",
    Params=ImageFolderParams,
    load=load,
)
