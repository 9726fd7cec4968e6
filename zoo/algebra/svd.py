"""SVD of ``B @ A`` without forming it: thin QR of both factors, then an ``r x r`` core SVD.

Cost ``O((d_in + d_out) r^2)`` instead of ``O(d_out d_in min(d_out, d_in))``. Batched over leading dims.
"""

from __future__ import annotations

import torch


def factored_svd(
    A: torch.Tensor, B: torch.Tensor, rank: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact thin SVD ``B @ A = U diag(S) Vh``, optionally truncated to the top ``rank`` triplets.

    ``A: (..., r, d_in)``, ``B: (..., d_out, r)`` -> ``U: (..., d_out, k)``, ``S: (..., k)``, ``Vh: (..., k, d_in)``
    with ``k = min(r, d_in, d_out)`` (or ``rank`` if smaller). ``A^T = Q_a R_a``, ``B = Q_b R_b`` so
    ``B A = Q_b (R_b R_a^T) Q_a^T`` and the core's SVD rotates the orthonormal bases.
    """
    q_a, r_a = torch.linalg.qr(A.mT)  # (..., d_in, k_a), (..., k_a, r)
    q_b, r_b = torch.linalg.qr(B)  # (..., d_out, k_b), (..., k_b, r)
    u_c, s, vh_c = torch.linalg.svd(r_b @ r_a.mT, full_matrices=False)  # core (..., k_b, k_a)
    if rank is not None:
        u_c, s, vh_c = u_c[..., :rank], s[..., :rank], vh_c[..., :rank, :]
    return q_b @ u_c, s, vh_c @ q_a.mT


def truncate_factors(
    A: torch.Tensor, B: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-``rank`` factors of ``B @ A`` (Eckart-Young), the singular values split evenly: ``(A', B')``.

    ``A: (r, d_in)``, ``B: (d_out, r)`` -> ``A': (k, d_in)``, ``B': (d_out, k)``, ``k = min(rank, r, d_in, d_out)``.
    """
    u, s, vh = factored_svd(A, B, rank)
    root = s.sqrt()
    return root[..., :, None] * vh, u * root[..., None, :]
