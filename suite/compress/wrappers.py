"""torch modules the compression methods wrap models in (imported only when a method runs)."""

from __future__ import annotations

import torch


class CastInputs(torch.nn.Module):
    """Runs `module` in `dtype` on float32 inputs and returns float32; token ids pass untouched."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(self.dtype) if x.is_floating_point() else x).float()
