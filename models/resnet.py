"""ResNets: the CIFAR-style network that trains on small images, and the ImageNet ResNet-18/50
shapes for latency, throughput, memory and compression benchmarks with random weights."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, field_validator

from models.spec import ModelSpec
from suite.config.params import Params


class CifarResNetParams(Params):
    depth: PositiveInt = 20  # 6n+2: 8, 14, 20, 32, ...
    width: PositiveInt = 16  # channels of the first stage; the next two have 2x and 4x

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, depth: int) -> int:
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 and at least 8 (8, 14, 20, 32, ...), got {depth}")
        return depth


class ImageNetResNetParams(Params):
    depth: Literal[18, 34, 50, 101, 152] = 50
    width: PositiveInt = 64


def build_cifar(params: CifarResNetParams, data):
    from models.nets.resnet import cifar_resnet

    return cifar_resnet(params.depth, data.input_shape[0], data.num_classes, params.width)


def build_imagenet(params: ImageNetResNetParams, data):
    from models.nets.resnet import imagenet_resnet

    return imagenet_resnet(params.depth, data.input_shape[0], data.num_classes, params.width)


CIFAR = ModelSpec(
    description="CIFAR-style ResNet (He et al. 2016, depth 6n+2, basic blocks), trains on small images",
    Params=CifarResNetParams,
    build=build_cifar,
    dataset="digits",
    train={"epochs": 60, "batch_size": 64, "lr": 3e-3, "weight_decay": 5e-4, "patience": 12},
)

IMAGENET = ModelSpec(
    description="ImageNet ResNet-18/34/50/101/152 as torchvision builds it, random weights (untrained)",
    Params=ImageNetResNetParams,
    build=build_imagenet,
    dataset="random",
    train=None,
)
