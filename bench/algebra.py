"""Adapter algebra benchmark: factored LoRA maths vs dense references vs PEFT, side by side in one run.

    .venv/bin/python bench/algebra.py               # CPU, 4096 x 4096 module + Llama-7B-shaped adapter
    .venv/bin/python bench/algebra.py --quick       # small shapes, seconds (smoke test)
    .venv/bin/python bench/algebra.py --device cuda

Sections: Arrow prototypes (ours: thin QR + r x r SVD; dense ``torch.linalg.svd`` of ``B@A``; PEFT's Arrow
power iteration), N x N cosine similarity (factored block Gram vs dense Gram of flattened ``dW``; seeded
sketches), merges (ours vs PEFT ``add_weighted_adapter`` with ``ties_svd`` / ``svd``). Time is the median of
``--repeat`` runs (single runs for anything slower than a few seconds); peak memory is the increase over the
resident set (CPU, sampled every 1 ms) or over allocated CUDA memory during the call. Dense/PEFT numbers
marked "est." for the 7B-shaped adapter are extrapolated from the measured 4096 x 4096 module by the SVD
flop count ``m n min(m, n)``: measuring them would take hours on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.adapters import Adapter, LoraFactors
from zoo.algebra import cosine_matrix, sketch_cosine_matrix, sketch_many
from zoo.algebra.prototypes import arrow_prototypes
from zoo.eval.cost import RssSampler
from zoo.merge import merge


@dataclass(frozen=True)
class Size:
    """Benchmark shapes: the square module, the 7B-shaped model and the zoo sizes."""

    d: int
    r: int
    hidden: int
    intermediate: int
    layers: int
    n_similarity: int
    n_merge: int


FULL = Size(d=4096, r=16, hidden=4096, intermediate=11008, layers=32, n_similarity=8, n_merge=4)
QUICK = Size(d=512, r=8, hidden=512, intermediate=1376, layers=2, n_similarity=4, n_merge=3)


# --- measurement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    result: Any


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], Any], device: str, repeat: int = 1) -> Measured:
    """Median wall time of ``repeat`` calls (after one warm-up call when ``repeat > 1``) and the peak memory
    increase of the first measured call."""
    if repeat > 1:
        fn()
    times, peak, result = [], 0.0, None
    for i in range(repeat):
        _sync(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            start = time.perf_counter()
            result = fn()
            _sync(device)
            times.append(time.perf_counter() - start)
            used = torch.cuda.max_memory_allocated() - base
        else:
            with RssSampler(psutil.Process(), every_s=0.001) as sampler:
                start = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - start)
            used = sampler.peak - sampler.base
        if i == 0:
            peak = used / 2**20
    return Measured(statistics.median(times), peak, result)


# --- synthetic adapters ----------------------------------------------------------------------------


def with_spectrum(d_out: int, d_in: int, sigmas: list[float], gen: torch.Generator) -> LoraFactors:
    """Factors with the given singular values, hidden behind a random gauge ``A = R V^T, B = U S R^-1``."""
    r = len(sigmas)
    u, _ = torch.linalg.qr(torch.randn(d_out, r, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d_in, r, generator=gen, dtype=torch.float64))
    gauge = torch.randn(r, r, generator=gen, dtype=torch.float64) / r**0.5 + torch.eye(r, dtype=torch.float64)
    a = gauge @ v.T
    b = (u * torch.tensor(sigmas, dtype=torch.float64)) @ torch.linalg.inv(gauge)
    return LoraFactors(A=a.float(), B=b.float())


DECAYING = [0.8**i for i in range(64)]  # a trained LoRA's spectrum decays; sigma2/sigma1 = 0.8


def generic_factors(d_out: int, d_in: int, r: int, gen: torch.Generator) -> LoraFactors:
    """Independent Gaussian factors (Kaiming-like A, small B): a flat spectrum, sigma2/sigma1 near 1."""
    return LoraFactors(A=torch.randn(r, d_in, generator=gen) / d_in**0.5, B=torch.randn(d_out, r, generator=gen) * 0.02)


def llama_shapes(size: Size) -> dict[str, tuple[int, int]]:
    """``{module: (d_out, d_in)}`` of a Llama-style decoder (7B: 32 layers, 4096 / 11008)."""
    h, f = size.hidden, size.intermediate
    per_layer = {"self_attn.q_proj": (h, h), "self_attn.k_proj": (h, h), "self_attn.v_proj": (h, h),
                 "self_attn.o_proj": (h, h), "mlp.gate_proj": (f, h), "mlp.up_proj": (f, h), "mlp.down_proj": (h, f)}
    return {f"model.layers.{i}.{m}": s for i in range(size.layers) for m, s in per_layer.items()}


def generated_adapter(shapes: dict[str, tuple[int, int]], r: int, seed: int) -> Adapter:
    gen = torch.Generator().manual_seed(seed)
    return Adapter({m: generic_factors(*s, r, gen) for m, s in shapes.items()})


def svd_flops(shapes: dict[str, tuple[int, int]]) -> float:
    return float(sum(m * n * min(m, n) for m, n in shapes.values()))


# --- PEFT references -------------------------------------------------------------------------------


def peft_power_iteration(f: LoraFactors, device: str) -> torch.Tensor:
    """PEFT 0.21's Arrow prototype routine (15 power iterations on ``A^T B^T B A``), called as PEFT calls it."""
    from peft.tuners.lora.arrow import ArrowLoraLinearLayer

    layer = SimpleNamespace(rng_seed=0)
    return ArrowLoraLinearLayer.top_right_singular_vec_from_BA(layer, f.A.to(device), f.B.to(device))


def peft_model_with(adapters: list[LoraFactors], device: str) -> torch.nn.Module:
    """A one-``Linear`` model carrying ``adapters`` as PEFT adapters ``a0, a1, ...`` (scale 1: alpha = r)."""
    from peft import LoraConfig, get_peft_model

    d_out, d_in = adapters[0].d_out, adapters[0].d_in

    class OneLinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(d_in, d_out, bias=False)

    model = None
    for i, f in enumerate(adapters):
        config = LoraConfig(r=f.rank, lora_alpha=f.rank, target_modules=["proj"])
        if model is None:
            model = get_peft_model(OneLinear(), config, adapter_name=f"a{i}")
        else:
            model.add_adapter(f"a{i}", config)
        layer = model.base_model.model.proj
        with torch.no_grad():
            layer.lora_A[f"a{i}"].weight.copy_(f.A)
            layer.lora_B[f"a{i}"].weight.copy_(f.B)
    return model.to(device)


def peft_merge(model: torch.nn.Module, n: int, combination: str, rank: int, density: float | None) -> torch.Tensor:
    names = [f"a{i}" for i in range(n)]
    model.add_weighted_adapter(names, [1.0] * n, "merged", combination_type=combination, svd_rank=rank, density=density)
    delta = model.base_model.model.proj.get_delta_weight("merged")
    model.delete_adapter("merged")
    return delta


# --- sections --------------------------------------------------------------------------------------


def abs_cos(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double().cpu(), y.double().cpu()
    return float((x @ y).abs() / (x.norm() * y.norm()))


def rows(title: str, header: list[str], body: list[list[str]]) -> str:
    lines = [f"\n### {title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _prototype_row(
    label: str, method: str, seconds: float, v: torch.Tensor, f: LoraFactors, exact: torch.Tensor
) -> list[str]:
    """|cos| to the exact vector, and ``||dW v|| / sigma_1``: the only meaningful accuracy when the spectrum is
    near-degenerate (every unit vector of the top singular subspace attains 1)."""
    def gain(x: torch.Tensor) -> float:
        return float((f.B.double() @ (f.A.double() @ x.double().cpu())).norm())

    return [label, method, fmt_s(seconds), f"{abs_cos(v, exact):.8f}", f"{gain(v) / gain(exact):.8f}"]


def bench_prototypes(size: Size, device: str, repeat: int) -> tuple[str, float]:
    """Single module with three spectra, then a whole 7B-shaped adapter. Returns the table and the dense time."""
    gen = torch.Generator().manual_seed(0)
    d, r = size.d, size.r
    tail = torch.linspace(0.5, 0.05, r - 2).tolist()
    spectra = {  # label -> (factors, whether to run the slow dense SVD too)
        "decaying, sigma_i = 0.8^i": (with_spectrum(d, d, DECAYING[:r], gen), True),
        "random Gaussian factors": (generic_factors(d, d, r, gen), False),
        "sigma2/sigma1 = 0.9999": (with_spectrum(d, d, [1.0, 0.9999, *tail], gen), True),
        "sigma2/sigma1 = 1 - 1e-7": (with_spectrum(d, d, [1.0, 1.0 - 1e-7, *tail], gen), False),
    }
    body, dense_seconds = [], 0.0
    for label, (f, with_dense) in spectra.items():
        adapter = Adapter({"m": f})
        exact = arrow_prototypes(adapter, device=device, dtype=torch.float64)["m"]
        ours64 = measure(lambda a=adapter: arrow_prototypes(a, device=device, dtype=torch.float64), device, repeat)
        ours32 = measure(lambda a=adapter: arrow_prototypes(a, device=device, dtype=torch.float32), device, repeat)
        peft = measure(lambda f=f: peft_power_iteration(f, device), device, repeat)
        body.append(_prototype_row(label, "ours fp64 (reference)", ours64.seconds, ours64.result["m"], f, exact))
        body.append(_prototype_row(label, "ours fp32", ours32.seconds, ours32.result["m"], f, exact))
        if with_dense:  # a dense SVD takes ~1 min per 4096 x 4096 module on two CPU cores
            dense = measure(lambda f=f: torch.linalg.svd(f.B.to(device) @ f.A.to(device), full_matrices=False)[2][0],
                            device)
            dense_seconds = dense_seconds or dense.seconds
            body.append(_prototype_row(label, "dense torch.linalg.svd fp32", dense.seconds, dense.result, f, exact))
        body.append(_prototype_row(label, "PEFT Arrow (15 power iterations)", peft.seconds, peft.result, f, exact))
    table = rows(f"Arrow prototypes, one {d} x {d} module, r = {r}",
                 ["spectrum", "method", "time", "abs cos to exact", "norm(dW v) / sigma_1"], body)

    shapes = llama_shapes(size)
    gen = torch.Generator().manual_seed(1)
    adapter = Adapter({m: with_spectrum(*s, DECAYING[:r], gen) for m, s in shapes.items()})
    exact = arrow_prototypes(adapter, device=device)
    ours = measure(lambda: arrow_prototypes(adapter, device=device, dtype=torch.float64), device)
    ours32 = measure(lambda: arrow_prototypes(adapter, device=device, dtype=torch.float32), device)
    peft = measure(lambda: {m: peft_power_iteration(f, device) for m, f in adapter.modules.items()}, device)
    dense_est = dense_seconds * svd_flops(shapes) / (d**3)
    worst = lambda got: min(abs_cos(got[m], exact[m]) for m in exact)  # noqa: E731
    table += rows(
        f"Arrow prototypes, Llama-7B-shaped adapter ({len(shapes)} modules, r = {r}, sigma_i = 0.8^i)",
        ["method", "time", "min abs cos over modules", "speed-up of ours (fp64)"],
        [["ours fp64", fmt_s(ours.seconds), "1 (reference)", "1x"],
         ["ours fp32", fmt_s(ours32.seconds), f"{worst(ours32.result):.8f}", f"{ours.seconds / ours32.seconds:.2f}x"],
         ["dense SVD (est.)", fmt_s(dense_est), "-", f"{dense_est / ours.seconds:,.0f}x"],
         ["PEFT Arrow", fmt_s(peft.seconds), f"{worst(peft.result):.8f}", f"{peft.seconds / ours.seconds:.1f}x"]],
    )
    return table, dense_seconds


def dense_cosine(adapters: list[Adapter], device: str) -> torch.Tensor:
    """The obvious way: materialise every ``dW``, flatten, Gram matrix (fp32), normalise."""
    gram = None
    for name in adapters[0].modules:
        flat = torch.stack([a.modules[name].B.to(device) @ a.modules[name].A.to(device) for a in adapters]).flatten(1)
        g = flat @ flat.T
        gram = g if gram is None else gram + g
    norms = gram.diagonal().sqrt()
    return (gram / norms[:, None] / norms[None, :]).cpu()


def bench_similarity(size: Size, device: str, repeat: int) -> str:
    n, d, r = size.n_similarity, size.d, size.r
    module = [Adapter({"m": generic_factors(d, d, r, torch.Generator().manual_seed(10 + i))}) for i in range(n)]
    # Related adapters, so cosines are not all ~0: each shares half its update with the first.
    module = [module[0]] + [
        a.with_modules({"m": LoraFactors(torch.cat([module[0].modules["m"].A, a.modules["m"].A]),
                                         torch.cat([module[0].modules["m"].B, a.modules["m"].B], dim=1))})
        for a in module[1:]
    ]
    exact = cosine_matrix(module, device=device)
    ours = measure(lambda: cosine_matrix(module, device=device), device, repeat)
    dense = measure(lambda: dense_cosine(module, device), device)
    sk = measure(lambda: sketch_cosine_matrix(sketch_many(module, k=32, seed=0, device=device)), device, repeat)
    body = [
        ["factored block Gram (fp64)", fmt_s(ours.seconds), f"{ours.peak_mb:.0f}", "0 (reference)"],
        ["dense Gram of flattened dW (fp32)", fmt_s(dense.seconds), f"{dense.peak_mb:.0f}",
         f"{abs(dense.result.numpy() - exact).max():.1e}"],
        ["sketches k = 32 (sketch + cosine)", fmt_s(sk.seconds), f"{sk.peak_mb:.0f}",
         f"{abs(sk.result - exact).max():.3f}"],
    ]
    table = rows(f"{n} x {n} cosine similarity, one {d} x {d} module, r = {r} and {2 * r}",
                 ["method", "time", "peak MB", "max abs error"], body)

    shapes = llama_shapes(size)
    zoo = [generated_adapter(shapes, r, seed=100 + i) for i in range(n)]
    ours = measure(lambda: cosine_matrix(zoo, device=device), device)
    layer0 = [a.subset([m for m in shapes if m.startswith("model.layers.0.")]) for a in zoo]
    dense_layer = measure(lambda: dense_cosine(layer0, device), device)
    sk = measure(lambda: sketch_many(zoo, k=32, seed=0, device=device), device)
    sk_err = abs(sketch_cosine_matrix(sk.result) - ours.result).max()
    table += rows(
        f"{n} x {n} cosine similarity, Llama-7B-shaped adapters ({len(shapes)} modules, r = {r})",
        ["method", "time", "peak MB", "note"],
        [["factored block Gram (fp64)", fmt_s(ours.seconds), f"{ours.peak_mb:.0f}", "exact"],
         ["dense Gram (est. = layer 0 x layers)", fmt_s(dense_layer.seconds * size.layers),
          f"{dense_layer.peak_mb:.0f} (one layer)", f"{dense_layer.seconds * size.layers / ours.seconds:.0f}x slower"],
         ["sketches k = 32", fmt_s(sk.seconds), f"{sk.peak_mb:.0f}", f"max abs cosine error {sk_err:.3f}"]],
    )
    return table


def bench_merge(size: Size, device: str) -> str:
    from peft.utils.merge_utils import ties as peft_ties

    n, d, r, density = size.n_merge, size.d, size.r, 0.2
    gen = torch.Generator().manual_seed(3)
    factors = [generic_factors(d, d, r, gen) for _ in range(n)]
    adapters = [Adapter({"proj": f}) for f in factors]
    model = peft_model_with(factors, device)
    deltas = [f.B.to(device) @ f.A.to(device) for f in factors]
    ties_dense = peft_ties(deltas, torch.ones(n, device=device), density)  # what both truncate
    linear_dense = sum(deltas)
    del deltas

    def residual(x: torch.Tensor, target: torch.Tensor) -> float:
        return float((x.to(target.device) - target).norm() / target.norm())

    body, peft_seconds = [], {}
    cases = [
        ("TIES (density 0.2)", lambda: merge(adapters, "ties", rank=r, density=density, device=device), "ties_svd",
         ties_dense),
        ("linear / task arithmetic", lambda: merge(adapters, "task_arithmetic", rank=r, device=device), "svd",
         linear_dense),
    ]
    for label, ours_fn, combination, target in cases:
        ours = measure(ours_fn, device)
        peft = measure(lambda c=combination: peft_merge(model, n, c, r, density if c == "ties_svd" else None), device)
        peft_seconds[combination] = peft.seconds
        ours_delta = ours.result.modules["proj"].delta()
        body.append([label, "ours", fmt_s(ours.seconds), f"{ours.peak_mb:.0f}", f"{residual(ours_delta, target):.4f}",
                     f"{peft.seconds / ours.seconds:.1f}x"])
        body.append([label, f"PEFT {combination}", fmt_s(peft.seconds), f"{peft.peak_mb:.0f}",
                     f"{residual(peft.result, target):.4f}", "1x"])
    del cases, ties_dense, linear_dense
    table = rows(f"Merging {n} adapters, one {d} x {d} module, r = {r} -> rank {r}",
                 ["merge", "implementation", "time", "peak MB", "rel. residual to untruncated merge", "speed-up"], body)

    shapes = llama_shapes(size)
    zoo = [generated_adapter(shapes, r, seed=200 + i) for i in range(n)]
    linear = measure(lambda: merge(zoo, "task_arithmetic", rank=r, device=device), device)
    layer0 = [a.subset([m for m in shapes if m.startswith("model.layers.0.")]) for a in zoo]
    ties_layer = measure(lambda: merge(layer0, "ties", rank=r, density=density, device=device), device)
    scale = svd_flops(shapes) / d**3
    table += rows(
        f"Merging {n} Llama-7B-shaped adapters ({len(shapes)} modules, r = {r}) -> rank {r}",
        ["merge", "implementation", "time", "peak MB"],
        [["linear / task arithmetic", "ours (factored, exact truncation)", fmt_s(linear.seconds),
          f"{linear.peak_mb:.0f}"],
         ["linear / task arithmetic", "PEFT svd (est.)", fmt_s(peft_seconds["svd"] * scale), "-"],
         ["TIES", "ours (est. = layer 0 x layers)", fmt_s(ties_layer.seconds * size.layers),
          f"{ties_layer.peak_mb:.0f} (one layer)"],
         ["TIES", "PEFT ties_svd (est.)", fmt_s(peft_seconds["ties_svd"] * scale), "-"]],
    )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test, seconds)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the fast measurements")
    parser.add_argument("--sections", default="prototypes,similarity,merge")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    sections = args.sections.split(",")
    threads = torch.get_num_threads()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {threads} threads"
    print(f"## Adapter algebra benchmark ({device_name}, torch {torch.__version__}"
          f"{', quick' if args.quick else ''})")
    started = time.perf_counter()
    if "prototypes" in sections:
        print(bench_prototypes(size, args.device, args.repeat)[0], flush=True)
    if "similarity" in sections:
        print(bench_similarity(size, args.device, args.repeat), flush=True)
    if "merge" in sections:
        print(bench_merge(size, args.device), flush=True)
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
