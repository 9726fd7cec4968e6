"""``merge(adapters, method, weights, rank)``: one engine for every registered method.

Factored methods (linear, task arithmetic) are exact in factor space:
``sum_i w_i B_i A_i = [w_1 B_1 | ... | w_n B_n] [A_1; ...; A_n]`` (rank ``sum r_i``), optionally compressed
with the QR-core SVD; averaging A and B separately would add cross terms ``B_i A_j`` that no adapter
learned. Element-wise methods need ``dW`` itself: they stream one module at a time (peak memory: the
``n`` updates of one module), then re-factor to the target rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo.adapters.factors import Adapter, LoraFactors
from zoo.algebra.seeds import stable_seed
from zoo.algebra.svd import truncate_factors
from zoo.merge import steps
from zoo.merge.refactor import dense_to_factors
from zoo.merge.registry import MergeData, MergeMethod, get_method

# Options every method accepts, on top of its own ``defaults``.
COMMON_OPTIONS = {"device": "cpu", "svd": "randomized", "seed": 0}


def merge(
    adapters: Sequence[Adapter],
    method: str,
    weights: Sequence[float] | None = None,
    rank: int | dict[str, int] | None = None,
    data: MergeData | None = None,
    **opts: Any,
) -> Adapter:
    """Merge ``adapters`` with the registered ``method`` into a new adapter.

    ``weights`` default to 1 each (``linear`` normalises them to sum 1). ``rank``: one target rank, or
    one per module; ``None`` keeps factored merges exact (rank ``sum r_i``) and re-factors element-wise
    merges to the largest input rank of each module. Options: the method's ``defaults`` (e.g. ``density``)
    and ``device``, ``svd`` (``"randomized"``/``"exact"`` re-factoring), ``seed``. ``data``: what a data-aware
    method (``prepare``/``combine``) reads about the adapters.
    """
    spec = get_method(method)
    options = _options(spec, opts)
    adapters = list(adapters)
    if not adapters:
        raise ValueError("merge needs at least one adapter")
    w = [1.0] * len(adapters) if weights is None else [float(x) for x in weights]
    if len(w) != len(adapters):
        raise ValueError(f"{len(w)} weights for {len(adapters)} adapters")
    _check_compatible(adapters)
    prepared = spec.prepare(adapters, data, options) if spec.prepare else None
    modules = {}
    for name in _union_modules(adapters):
        idx = [i for i, a in enumerate(adapters) if name in a.modules]
        factors = [adapters[i].modules[name] for i in idx]
        wi = [w[i] for i in idx]
        target = rank.get(name) if isinstance(rank, dict) else rank
        if spec.combine:
            combined = spec.combine(name, idx, factors, wi, prepared, options)
            if combined is not None:  # a method may leave a module out (no kept expert adapts it)
                modules[name] = combined
        elif spec.factored:
            modules[name] = factored_sum(factors, wi, spec.normalize, target, options["device"])
        else:
            modules[name] = _elementwise(name, idx, factors, wi, spec, options, target)
    first = adapters[0]
    return Adapter(
        modules=modules,
        base_model_name_or_path=first.base_model_name_or_path,
        fan_in_fan_out=first.fan_in_fan_out,
        task_type=first.task_type,
        source=f"merge:{method}",
    )


def _options(spec: MergeMethod, opts: dict[str, Any]) -> dict[str, Any]:
    allowed = {**COMMON_OPTIONS, **spec.defaults}
    unknown = set(opts) - set(allowed)
    if unknown:
        raise ValueError(f"{spec.name} does not take {sorted(unknown)}; options: {sorted(allowed)}")
    return {**allowed, **opts}


def _check_compatible(adapters: list[Adapter]) -> None:
    if len({a.fan_in_fan_out for a in adapters}) > 1:
        raise ValueError("cannot merge fan_in_fan_out adapters with others: they target different base layouts")
    shapes: dict[str, tuple[int, int]] = {}
    for a in adapters:
        for name, f in a.modules.items():
            if shapes.setdefault(name, (f.d_out, f.d_in)) != (f.d_out, f.d_in):
                raise ValueError(f"module {name} is {(f.d_out, f.d_in)} in one adapter, {shapes[name]} in another")


def _union_modules(adapters: list[Adapter]) -> list[str]:
    return list(dict.fromkeys(name for a in adapters for name in a.modules))


def factored_sum(
    factors: list[LoraFactors], weights: list[float], normalize: bool, rank: int | None, device: str
) -> LoraFactors:
    """``sum w_i B_i A_i`` as concatenated factors, truncated exactly (QR-core SVD) when ``rank`` is given."""
    if normalize:
        total = sum(weights)
        if abs(total) < 1e-12:
            raise ValueError("linear merge normalises by the sum of the weights, which is 0; use task_arithmetic")
        weights = [x / total for x in weights]
    a = torch.cat([f.A for f in factors]).to(device)
    b = torch.cat([f.B * x for f, x in zip(factors, weights, strict=True)], dim=1).to(device)
    if rank is not None and rank < a.shape[0]:
        a, b = truncate_factors(a.double(), b.double(), rank)
    return LoraFactors(A=a.float().cpu().contiguous(), B=b.float().cpu().contiguous())


def _elementwise(
    name: str,
    idx: list[int],
    factors: list[LoraFactors],
    weights: list[float],
    spec: MergeMethod,
    options: dict[str, Any],
    rank: int | None,
) -> LoraFactors:
    """Sparsify each update, weight it, optionally elect signs, sum, re-factor: one module, on ``device``."""
    device = torch.device(options["device"])
    d_out, d_in = factors[0].d_out, factors[0].d_in
    stacked = torch.empty(len(factors), d_out, d_in, device=device) if spec.consensus else None
    merged = torch.zeros(d_out, d_in, device=device) if stacked is None else None
    for j, (i, f, w) in enumerate(zip(idx, factors, weights, strict=True)):
        delta = _sparsify(f.B.to(device) @ f.A.to(device), spec, options, seed=(options["seed"], name, i)).mul_(w)
        if stacked is None:
            merged.add_(delta)
        else:
            stacked[j] = delta
        del delta
    if spec.consensus is None:
        total = sum(weights) if spec.normalize else 1.0
        if abs(total) >= 1e-12:
            merged = merged / total
    else:
        mask = steps.elect_sign(stacked, options["majority"])
        merged = stacked.mul_(mask).sum(dim=0)
        del stacked
        if spec.normalize:
            divisor = sum(w * m for w, m in zip(weights, mask, strict=True))
            merged = merged / torch.where(divisor.abs() < 1e-12, torch.ones_like(divisor), divisor)
        del mask
    target = rank if rank is not None else max(f.rank for f in factors)
    return dense_to_factors(merged, target, svd=options["svd"], seed=options["seed"]).to("cpu")


def _sparsify(delta: torch.Tensor, spec: MergeMethod, options: dict[str, Any], seed: tuple) -> torch.Tensor:
    if spec.sparsify == "magnitude":
        return steps.magnitude(delta, options["density"])
    if spec.sparsify == "random":
        generator = torch.Generator(device=delta.device).manual_seed(stable_seed(*seed))
        return steps.random(delta, options["density"], generator)
    if spec.sparsify == "outliers":
        return steps.outliers(delta, options["density"], options["gamma"])
    return delta
