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


class PackedInt4Linear(torch.nn.Module):
    """`linear` with its weight in int4 packed for torch's CPU kernel (suite.compress.int4_cpu): the
    kernel's layout, w = (q - 8) * scale + zero with q in 0..15, a scale and zero point per group
    of `group_size` input weights (see _levels). The product runs with
    bf16 activations (float32 ones are cast, the result cast back): the kernel's float32 path is a
    slow reference (one 576x1536 layer at batch 1 here: 866 us, against 42 us in bf16 and 107 us
    for the float32 Linear)."""

    LEVELS = 15

    def __init__(self, linear: torch.nn.Linear, group_size: int):
        super().__init__()
        weight = linear.weight.detach().float()
        n, k = weight.shape
        groups = weight.reshape(n, k // group_size, group_size)
        q, scale, zero = self._levels(groups)
        self.in_features, self.out_features, self.group_size = k, n, group_size
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        self.register_buffer("scales_and_zeros", torch.stack(
            [scale.reshape(n, -1).t(), zero.reshape(n, -1).t()], dim=-1).contiguous())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def _levels(self, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each group's levels, scale and zero point (bf16, as the kernel reads them): the step that
        fits the group best by squared error among (max - min) / j for j = 15 down to 8, the zero at
        the minimum. A group whose weights use fewer than 16 levels of a finer grid (a Q4_1 file's
        group without its 0 or 15) keeps that grid instead of being quantized again: on weights
        made from Q4_1, 0.27 % relative error against 1.9 % for the 15 steps alone."""
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        best = None
        for steps in range(self.LEVELS, 7, -1):
            scale = ((high - low) / steps).clamp(min=torch.finfo(torch.float32).tiny).to(torch.bfloat16)
            zero = (low + scale.float() * 8).to(torch.bfloat16)
            q = ((groups - zero.float()) / scale.float() + 8).round().clamp(0, self.LEVELS)
            error = ((q - 8) * scale.float() + zero.float() - groups).square().sum(-1, keepdim=True)
            if best is None:
                best = [error, q, scale, zero]
                continue
            better = error < best[0]
            best = [torch.where(better, new, old) for new, old in zip((error, q, scale, zero), best, strict=True)]
        _, q, scale, zero = best
        n = groups.shape[0]
        return q.to(torch.int32).reshape(n, -1), scale, zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size, self.scales_and_zeros)
        out = out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"
