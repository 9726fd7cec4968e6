"""The element-wise steps of a merge, on one module's dense updates ``dW: (d_out, d_in)``.

Counts follow PEFT/mergekit: ``density`` keeps ``int(density * numel)`` entries, chosen by a magnitude
threshold (entries tied with it are kept). The threshold comes from ``kthvalue`` on CPU (2x faster than
``topk`` there) and from an unsorted ``topk`` on CUDA (170x faster than CUDA's ``kthvalue`` at 4096 x 4096).
"""

from __future__ import annotations

from typing import Literal

import torch


def _kth_largest_abs(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th largest ``|x|`` (``1 <= k <= numel``)."""
    flat = x.reshape(-1).abs()
    if flat.is_cuda:
        return torch.topk(flat, k, sorted=False).values.min()
    return flat.kthvalue(flat.numel() - k + 1).values


def magnitude(x: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``int(density * numel)`` largest-magnitude entries (TIES' trim step)."""
    keep = int(density * x.numel())
    if keep >= x.numel():
        return x
    if keep <= 0:
        return torch.zeros_like(x)
    magnitudes = x.abs()
    return x.masked_fill(magnitudes < _kth_largest_abs(magnitudes, keep), 0)


def random(x: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE: keep each entry with probability ``density`` and rescale by ``1/density`` (unbiased)."""
    if density >= 1:
        return x
    if density <= 0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, device=x.device) < density
    return torch.where(keep, x / density, torch.zeros_like(x))


def outliers(x: torch.Tensor, density: float, gamma: float) -> torch.Tensor:
    """Model breadcrumbs: drop the top ``gamma`` fraction by magnitude (outliers) and keep the next
    ``int(density * numel)`` entries; the small tail is dropped too."""
    n = x.numel()
    n_top = int(gamma * n)
    keep = min(int(density * n), n - n_top)
    if keep <= 0:
        return torch.zeros_like(x)
    mask = x.abs() >= _kth_largest_abs(x, n_top + keep)
    if n_top > 0:
        mask &= x.abs() < _kth_largest_abs(x, n_top)
    return torch.where(mask, x, torch.zeros_like(x))


def elect_sign(weighted: torch.Tensor, method: Literal["total", "frequency"] = "total") -> torch.Tensor:
    """TIES' sign election over stacked weighted updates ``(n, d_out, d_in)`` -> bool agreement mask, same shape.

    ``total``: the sign of the summed mass; ``frequency``: the sign most adapters have; ties elect +.
    Zero (pruned) entries never agree. Temporaries are boolean, to keep peak memory near the stack's.
    """
    if method == "total":
        positive = weighted.sum(dim=0) >= 0
    elif method == "frequency":
        positive = (weighted > 0).sum(dim=0) >= (weighted < 0).sum(dim=0)
    else:
        raise ValueError(f"unknown sign election {method!r}; use 'total' or 'frequency'")
    return torch.where(positive, weighted > 0, weighted < 0)
