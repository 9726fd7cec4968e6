"""Routed-runtime benchmark: our top-k Arrow dispatch vs PEFT's Arrow vs base and a single LoRA, one run;
with ``--router prompt_centroid``, our per-example router vs PEFT's mixed-batch adapters and a single LoRA.

    .venv/bin/python bench/routing.py                 # CPU (about 7-8 minutes on 2 shared cores)
    .venv/bin/python bench/routing.py --quick         # small shapes, about 2 minutes (--no-memory: < 1 min)
    .venv/bin/python bench/routing.py --device cuda   # GPU (bf16 timing, bigger model; about 2 minutes on an H100)
    .venv/bin/python bench/routing.py --threads 1     # one torch thread: steadier on busy shared cores
    .venv/bin/python bench/routing.py --profile 32,4  # torch.profiler table of our forward at E=32, k=4
    .venv/bin/python bench/routing.py --paths         # StackedLora.delta alone, each dispatch path (seconds)
    .venv/bin/python bench/routing.py --dispatch dense  # force one dispatch path for "ours" (default: auto)
    .venv/bin/python bench/routing.py --router prompt_centroid --threads 1 --no-memory   # per-example routing

A Llama-shaped model is generated with random weights, and E = 64 LoRA experts (rank r on every linear
layer: q/k/v/o/gate/up/down, lora_alpha = 2r, a decaying spectrum like a trained LoRA's) are written once as
PEFT adapter folders. Both runtimes read THE SAME folders: ours through ``zoo.adapters.load_adapter`` +
``zoo.routing.route_model``, PEFT through ``peft.create_arrow_model``; the first E of them form a library.

Before timing, every (E, k) is checked for equal work: PEFT's prototypes are 15 power iterations from a
random start, ours are exact top singular vectors, so we first report how far PEFT's own prototypes are
from the exact ones (|cos| and the resulting logits difference), then put the exact prototypes into PEFT's
layers and require the two models' logits to agree (float32). Everything else in the two definitions
coincides: ``|<h, v_e>| / T``, top-k, softmax over the kept logits, the adapter scale on ``B``.

Timing: tokens per second of one forward pass (no KV cache) over a ``batch x seq`` prompt ("prefill") and
over ``batch x 1`` tokens ("decode-sized": what each generation step feeds the linear layers), median of
``--repeat`` rounds in which every configuration runs once in turn (so a noisy neighbour hits all alike).
Memory: on CPU each (runtime, E) is built in a fresh subprocess and its resident set is sampled every
millisecond: "state" is the RSS after building (freed heap trimmed) minus the RSS after the imports, "peak"
the highest RSS during two prefill forwards minus the same baseline (so it counts the base model, the
adapters and activations), "forward" the peak minus the state.
On CUDA, ``torch.cuda.memory_allocated`` / ``max_memory_allocated`` over the same phases in-process.

Per-example routing (``--router prompt_centroid``, k = 1, 2): the prefill forward includes the decision (the
base model up to the embedding layer, whitening, distances); the decode-sized forward applies a decision
held from the prefill, as ``generate``'s decode steps do, timed after one untimed step under it (what a
held decision prepares, it prepares once per generation, not per step). The router's state is what ``fit`` makes, minus
the data: centroids are embeddings of random prompts (so the batch's examples pick different experts),
whitening the identity (the same matmul), no prompt unfamiliar except in the row that makes every prompt
so (the fallback, the uniform mixture of all E). The embedding layer defaults to the router's default
(layer 8 of SmolLM2-135M's 30) scaled to the bench model's depth. PEFT's own path for per-example adapters
is its mixed batch (E adapters in one ``PeftModel``, ``adapter_names`` per example): k = 1 only, given our
decision, and checked to give our logits. "x single LoRA" is there the median over rounds of the time over
the single LoRA's in the same round (steadier on busy shared cores than a ratio of medians), "best x LoRA"
the fastest round's time over the single LoRA's fastest.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.adapters import Adapter, LoraFactors, load_adapter  # noqa: E402
from zoo.adapters.factors import module_owners  # noqa: E402
from zoo.eval.cost import RssSampler, release_freed_heap  # noqa: E402
from zoo.routing import (  # noqa: E402
    ArrowConfig,
    ExampleDecision,
    ModuleRouting,
    RoutingHandle,
    StackedLora,
    arrow_routing_vectors,
    get_router,
    route_model,
    router_config,
)
from zoo.routing.prompt_centroid import EMBEDDED, prompt_embeddings  # noqa: E402

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Size:
    """Model and workload shapes."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    rank: int
    batch: int
    seq: int
    experts: tuple[int, ...] = (8, 32, 64)
    ks: tuple[int, ...] = (2, 4)
    example_ks: tuple[int, ...] = (1, 2)  # per-example routing


SIZES = {
    "cpu": Size("cpu", hidden=512, intermediate=1408, layers=4, heads=8, kv_heads=4, vocab=8192, rank=16,
                batch=4, seq=128),
    "cpu-quick": Size("cpu-quick", hidden=256, intermediate=704, layers=2, heads=4, kv_heads=2, vocab=4096,
                      rank=8, batch=2, seq=64),
    "cuda": Size("cuda", hidden=1024, intermediate=2816, layers=8, heads=16, kv_heads=8, vocab=32000, rank=16,
                 batch=8, seq=512),
    "cuda-quick": Size("cuda-quick", hidden=512, intermediate=1408, layers=4, heads=8, kv_heads=4, vocab=8192,
                       rank=16, batch=4, seq=128),
}


# --- model, experts, the three runtimes --------------------------------------------------------------


def base_model(size: Size) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=size.hidden, intermediate_size=size.intermediate,
                         num_hidden_layers=size.layers, num_attention_heads=size.heads,
                         num_key_value_heads=size.kv_heads, vocab_size=size.vocab,
                         max_position_embeddings=max(2048, size.seq))
    return LlamaForCausalLM(config).eval()


def target_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {name: tuple(m.weight.shape) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in TARGETS}


def write_experts(size: Size, root: Path, count: int) -> list[Path]:
    """``count`` PEFT adapter folders with lora_alpha = 2r; ``A`` rows decay as 0.8^i (a trained-like spectrum)."""
    shapes = target_shapes(base_model(size))
    gen = torch.Generator().manual_seed(1234)
    decay = 0.8 ** torch.arange(size.rank, dtype=torch.float32)
    dirs = []
    for e in range(count):
        modules = {}
        for name, (d_out, d_in) in shapes.items():
            a = decay[:, None] * torch.randn(size.rank, d_in, generator=gen) / d_in**0.5
            b = torch.randn(d_out, size.rank, generator=gen) * 0.01
            modules[name] = LoraFactors(a, b)
        folder = Adapter(modules, task_type="CAUSAL_LM").save_pretrained(root / f"expert{e:02d}")
        config_path = folder / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["lora_alpha"] = 2 * size.rank  # PEFT scale 2, which load_adapter folds into B
        config_path.write_text(json.dumps(config, indent=2))
        dirs.append(folder)
    return dirs


def build_ours(base: torch.nn.Module, dirs: list[Path], k: int) -> tuple[torch.nn.Module, Callable[[int], None], dict]:
    """Our routed model over the adapters in ``dirs``; returns it, a top-k setter and the routing vectors."""
    experts = [load_adapter(d) for d in dirs]
    routing = arrow_routing_vectors(experts)
    model = copy.deepcopy(base)
    handle = route_model(model, experts, routing, "arrow", {"top_k": k})
    del experts

    def set_k(top_k: int) -> None:
        for layer in handle.layers.values():
            layer.config = ArrowConfig(top_k=top_k)

    return model, set_k, {name: entry.vectors for name, entry in routing.items()}


def peft_arrow_layers(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, Any]]:
    """``{base module name: (PEFT LoRA layer, its ArrowLoraLinearLayer)}``."""
    layers = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_arrow") and "arrow_router" in module.lora_arrow:
            layers[name.removeprefix("base_model.model.")] = (module, module.lora_arrow["arrow_router"])
    return layers


def build_peft_arrow(base: torch.nn.Module, dirs: list[Path], k: int) -> tuple[torch.nn.Module, Callable[[int], None]]:
    from peft import ArrowConfig as PeftArrowConfig
    from peft import create_arrow_model

    model = create_arrow_model(copy.deepcopy(base), [str(d) for d in dirs],
                               PeftArrowConfig(top_k=k, router_temperature=1.0, rng_seed=0)).eval()

    def set_k(top_k: int) -> None:
        for _, arrow in peft_arrow_layers(model).values():
            arrow.top_k = top_k

    return model, set_k


def set_peft_prototypes(model: torch.nn.Module, vectors: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Use ``vectors`` (ours, exact) as PEFT's prototypes, or with ``None`` let PEFT build its own; returns
    the prototypes PEFT then holds."""
    held = {}
    for name, (module, arrow) in peft_arrow_layers(model).items():
        weight = module.lora_A[arrow.task_adapter_names[0]].weight
        if vectors is None:
            arrow._protos_ready = False
            arrow.build_prototypes(module.lora_A, module.lora_B)
        else:
            arrow.register_buffer("prototypes", vectors[name].to(weight.device, weight.dtype), persistent=False)
            arrow._protos_ready = True
        held[name] = arrow.prototypes.detach().float().cpu()
    return held


def build_single_lora(base: torch.nn.Module, folder: Path) -> torch.nn.Module:
    from peft import PeftModel

    return PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval()


# --- per-example routing: ours (prompt_centroid) and PEFT's mixed batch -------------------------------------


def centroid_layer(size: Size, layer: int | None) -> int:
    """The embedding layer: ``layer``, or the router's default (8 of SmolLM2-135M's 30) at this model's depth."""
    default = router_config("prompt_centroid", {}).layer
    return layer if layer else max(1, round(default * size.layers / 30))


def centroid_state(base: torch.nn.Module, size: Size, experts: int, layer: int) -> dict[str, torch.Tensor]:
    """The router-wide tensors ``fit`` would store, from random prompts instead of training data (see above)."""
    gen = torch.Generator().manual_seed(3)
    prompts = torch.randint(0, size.vocab, (experts, 32), generator=gen).to(next(base.parameters()).device)
    centroids = prompt_embeddings(base, prompts, None, layer).cpu()
    return {"members": torch.tensor(experts), "mean": torch.zeros(size.hidden), "whiten": torch.eye(size.hidden),
            "centroids": centroids, "threshold": torch.tensor(float("inf"))}


class CentroidControl:
    """Switches k (and "every prompt unfamiliar") on one routed model. ``hold`` ends the prefill phase: each
    setting's decision on the prompts is made once and kept, and the router no longer decides (decode steps)."""

    def __init__(self, model: torch.nn.Module, handle: RoutingHandle, layer: int) -> None:
        self.handle, self.layer = handle, layer
        self.hook = model._forward_pre_hooks[handle.hook.id]  # the runtime's prefill hook (a partial)
        self.held: dict[tuple[int, bool], ExampleDecision] | None = None

    def set(self, top_k: int, fallback: bool = False) -> None:
        if self.held is not None:
            self.handle.state.decision = self.held[(top_k, fallback)]
            return
        self.hook.keywords["config"] = router_config("prompt_centroid", {"top_k": top_k, "layer": self.layer})
        self.hook.keywords["tensors"]["threshold"] = torch.tensor(-1.0 if fallback else float("inf"))

    def hold(self, model: torch.nn.Module, prompts: torch.Tensor, settings: list[tuple[int, bool]]) -> None:
        held = {}
        for top_k, fallback in settings:
            self.set(top_k, fallback)
            forward(model, prompts)
            held[(top_k, fallback)] = self.handle.state.decision
        self.handle.hook.remove()
        self.handle.hook, self.held = None, held


def build_centroid(base: torch.nn.Module, dirs: list[Path], k: int, size: Size, layer: int
                   ) -> tuple[torch.nn.Module, CentroidControl]:
    experts = [load_adapter(d) for d in dirs]
    routing = {name: ModuleRouting(owners, torch.zeros(len(owners), 0))
               for name, owners in module_owners(experts).items()}
    model = copy.deepcopy(base)
    handle = route_model(model, experts, routing, "prompt_centroid", {"top_k": k, "layer": layer},
                         [EMBEDDED] * len(experts), centroid_state(base, size, len(experts), layer))
    return model, CentroidControl(model, handle, layer)


class DecisionAlone(torch.nn.Module):
    """The per-example router's decision alone (what a prefill adds before the routed forward)."""

    def __init__(self, base: torch.nn.Module, size: Size, experts: int, layer: int) -> None:
        super().__init__()
        self.base, self.layer = base, layer
        self.state = centroid_state(base, size, experts, layer)

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> Any:
        config = router_config("prompt_centroid", {"top_k": 2, "layer": self.layer})
        decision = get_router("prompt_centroid").decide(self.base, input_ids, None, self.state, config)
        return type("Out", (), {"logits": decision.weights})


class PeftMixedBatch(torch.nn.Module):
    """PEFT's own per-example path: every expert loaded into one ``PeftModel`` as adapter ``e<i>``, each
    example of a batch sent to one of them (``adapter_names``)."""

    def __init__(self, base: torch.nn.Module, dirs: list[Path]) -> None:
        from peft import PeftModel

        super().__init__()
        self.peft = PeftModel.from_pretrained(copy.deepcopy(base), str(dirs[0]), adapter_name="e0").eval()
        for i, folder in enumerate(dirs[1:], start=1):
            self.peft.load_adapter(str(folder), adapter_name=f"e{i}")
        self.names: list[str] | None = None

    def choose(self, decision: ExampleDecision) -> None:
        """Send each example to its top expert in ``decision`` (k = 1: the same work as ours)."""
        self.names = [f"e{int(e)}" for e in decision.experts[:, 0]]

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> Any:
        names = self.names or [f"e{i % len(self.peft.peft_config)}" for i in range(input_ids.shape[0])]
        return self.peft(input_ids=input_ids, use_cache=use_cache, adapter_names=names)


# --- measurement ---------------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rss() -> int:
    """Resident set after a collection, with freed heap handed back (glibc keeps it otherwise, so the RSS
    would count what loading the adapters allocated and freed as if the configuration still held it)."""
    release_freed_heap()
    return psutil.Process().memory_info().rss


def inputs(size: Size, device: str, seq: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, size.vocab, (size.batch, seq), generator=gen).to(device)


@torch.inference_mode()
def forward(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits


@dataclass
class Config:
    label: str
    kind: str  # base | lora | ours | peft; per example: centroid | decision | peft-mixed
    experts: int
    k: int
    model: torch.nn.Module | None = None
    set_k: Callable[[int], None] | None = None
    fallback: bool = False  # centroid: every prompt unfamiliar


def build(kind: str, base: torch.nn.Module, dirs: list[Path], experts: int, k: int, size: Size | None = None,
          layer: int = 1):
    """``(model, set_k)`` of one configuration (ours also returns its routing vectors as a third item, a
    per-example one its :class:`CentroidControl`)."""
    if kind == "base":
        return copy.deepcopy(base), None
    if kind == "lora":
        return build_single_lora(base, dirs[0]), None
    if kind == "ours":
        model, set_k, vectors = build_ours(base, dirs[:experts], k)
        return model, set_k, vectors
    if kind == "peft":
        return build_peft_arrow(base, dirs[:experts], k)
    if kind == "centroid":
        model, control = build_centroid(base, dirs[:experts], k, size, layer)
        return model, control.set, control
    if kind == "decision":
        return DecisionAlone(copy.deepcopy(base), size, experts, layer), None
    if kind == "peft-mixed":
        return PeftMixedBatch(base, dirs[:experts]), None
    raise ValueError(kind)


def child_memory(spec: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Run in a fresh process: build one (runtime, E) and sample its memory for each k in ascending order (CPU).

    The k runs share the process; a larger k never needs less than a smaller one, so each k's peak is its own.
    """
    size = Size(**{**spec["size"], "experts": tuple(spec["size"]["experts"]), "ks": tuple(spec["size"]["ks"])})
    dirs = [Path(d) for d in spec["dirs"]]
    import peft  # noqa: F401  (imports are in the baseline, not in the configuration's cost)
    import transformers  # noqa: F401

    torch.set_num_threads(spec["threads"])
    start = rss()
    base = base_model(size)
    built = build(spec["kind"], base, dirs, spec["experts"], spec["ks"][0], size, spec.get("layer", 1))
    model, set_k = built[0], built[1]
    del base, built
    if spec["kind"] == "peft":
        set_peft_prototypes(model, None)  # PEFT builds them on its first forward; count them as state
    after_build = rss()
    ids = inputs(size, "cpu", size.seq, seed=1)
    mb = 2**20
    result = {}
    for k in spec["ks"]:
        if set_k:
            set_k(k)
        with RssSampler(psutil.Process(), every_s=0.001) as sampler:
            for _ in range(2):
                forward(model, ids)
        result[str(k)] = {"state_mb": (after_build - start) / mb, "peak_mb": (sampler.peak - start) / mb,
                          "forward_mb": (sampler.peak - after_build) / mb}
    return result


def cpu_memory(configs: list[Config], size: Size, dirs: list[Path], layer: int = 1) -> dict[str, dict[str, float]]:
    """``{label: memory}``, one fresh subprocess per (runtime, E)."""
    groups: dict[tuple[str, int], list[Config]] = {}
    for c in configs:
        if not c.fallback:  # the same model as its setting without: the peak of the larger mixture is not measured
            groups.setdefault((c.kind, c.experts), []).append(c)
    memory = {}
    for (kind, experts), members in groups.items():
        ks = sorted({c.k for c in members})
        spec = {"size": asdict(size), "dirs": [str(d) for d in dirs], "kind": kind, "experts": experts, "ks": ks,
                "threads": torch.get_num_threads(), "dispatch": StackedLora.path, "layer": layer}
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                             check=True)
        by_k = json.loads(out.stdout.strip().splitlines()[-1])
        for c in members:
            memory[c.label] = by_k[str(c.k)]
    return memory


def cuda_memory(config: Config, size: Size) -> dict[str, float]:
    """State: bytes of the model's parameters and buffers on the GPU; forward: the allocation peak above it."""
    state_bytes = sum(t.numel() * t.element_size() for t in (*config.model.parameters(), *config.model.buffers()))
    ids = inputs(size, "cuda", size.seq, seed=1)
    if config.set_k:
        config.set_k(config.k)
    torch.cuda.synchronize()
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward(config.model, ids)
    torch.cuda.synchronize()
    transient = torch.cuda.max_memory_allocated() - before
    mb = 2**20
    return {"state_mb": state_bytes / mb, "peak_mb": (state_bytes + transient) / mb, "forward_mb": transient / mb}


# --- equal-work check ------------------------------------------------------------------------------------


@torch.inference_mode()
def layer_agreement(ours: torch.nn.Module, peft: torch.nn.Module, ids: torch.Tensor) -> tuple[float, float]:
    """Feed every routed layer's real input (captured from our model) to our layer and PEFT's: the largest
    output difference relative to the largest LoRA mixture (output - base) over all layers, and that size."""
    from zoo.routing import RoutedLinear

    captured: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: captured.__setitem__(name, args[0]))
             for name, m in ours.named_modules() if isinstance(m, RoutedLinear)]
    forward(ours, ids)
    for h in hooks:
        h.remove()
    theirs = peft_arrow_layers(peft)
    worst, scale = 0.0, 0.0
    for name, x in captured.items():
        mine = ours.get_submodule(name)
        y = mine(x)
        delta = (y - mine.base(x)).abs().max().item()
        worst = max(worst, (y - theirs[name][0](x)).abs().max().item() / delta)
        scale = max(scale, delta)
    return worst, scale


@torch.inference_mode()
def check_equal_work(size: Size, device: str, base: torch.nn.Module, ours: Config, peft: Config,
                     vectors: dict[str, torch.Tensor], k_values: tuple[int, ...]) -> list[dict[str, Any]]:
    """float32, same inputs: PEFT's own prototypes vs exact ones, then ours vs PEFT with the exact prototypes,
    layer by layer (must agree to float rounding) and at the logits (a near-tie in the top-k can flip on
    rounding differences upstream and change a few tokens' logits)."""
    ids = inputs(size, device, min(size.seq, 64), seed=7)
    base_logits = forward(base, ids).float()
    rows = []
    own = set_peft_prototypes(peft.model, None)
    cos = torch.cat([(own[n] * vectors[n].float().cpu()).sum(-1).abs() for n in own])
    for k in k_values:
        ours.set_k(k)
        peft.set_k(k)
        set_peft_prototypes(peft.model, None)
        peft_own = forward(peft.model, ids).float()
        set_peft_prototypes(peft.model, vectors)
        peft_exact = forward(peft.model, ids).float()
        mine = forward(ours.model, ids).float()
        layer_rel, layer_scale = layer_agreement(ours.model, peft.model, ids)
        effect = (mine - base_logits).abs().max().item()
        token_diff = (mine - peft_exact).abs().amax(-1)
        rows.append({"E": ours.experts, "k": k, "effect": effect, "layer_rel": layer_rel,
                     "diff_exact": token_diff.max().item(),
                     "tokens_differing": (token_diff > 1e-4 * effect).float().mean().item(),
                     "diff_own": (mine - peft_own).abs().max().item(),
                     "cos_min": cos.min().item(), "cos_median": cos.median().item()})
        if not layer_rel <= 1e-4:
            raise AssertionError(f"E={ours.experts} k={k}: a routed layer differs from PEFT's Arrow layer by "
                                 f"{layer_rel:.3g} of its LoRA mixture: not equal work")
    return rows


# --- the run ---------------------------------------------------------------------------------------------------


def time_all(configs: list[Config], ids: torch.Tensor, device: str, repeat: int) -> dict[str, float]:
    """Median seconds per forward of each configuration; configurations interleaved within each round."""
    return {label: statistics.median(t) for label, t in time_rounds(configs, ids, device, repeat).items()}


def time_rounds(configs: list[Config], ids: torch.Tensor, device: str, repeat: int,
                settle: bool = False) -> dict[str, list[float]]:
    """Seconds per forward of each configuration in each round; configurations interleaved within a round.
    ``settle``: one untimed forward after switching to a configuration, as a decode step follows another
    under the same held decision (what the first step under a decision prepares is then kept)."""
    times: dict[str, list[float]] = {c.label: [] for c in configs}
    for c in configs:  # warm-up
        if c.set_k:
            c.set_k(c.k)
        forward(c.model, ids)
    for _ in range(repeat):
        for c in configs:
            if c.set_k:
                c.set_k(c.k)
            if settle:
                forward(c.model, ids)
            sync(device)
            start = time.perf_counter()
            forward(c.model, ids)
            sync(device)
            times[c.label].append(time.perf_counter() - start)
    return times


def profile(size: Size, device: str, dtype: torch.dtype, base: torch.nn.Module, dirs: list[Path], experts: int,
            k: int) -> None:
    """torch.profiler over one prefill forward of our routed model at (E, k): where the time goes."""
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    from zoo.routing import RoutedLinear

    cuda = device.startswith("cuda")
    model, set_k, _ = build_ours(base, dirs[:experts], k)
    model.to(device).to(dtype)
    ids = inputs(size, device, size.seq, seed=2)
    route, delta = RoutedLinear.route, StackedLora.delta

    def timed_route(self, h):
        with record_function("ours: route (scores, top-k, softmax)"):
            return route(self, h)

    def timed_delta(self, *args, **kwargs):
        with record_function("ours: dispatch (grouped LoRA)"):
            return delta(self, *args, **kwargs)

    RoutedLinear.route, StackedLora.delta = timed_route, timed_delta
    try:
        for _ in range(2):
            forward(model, ids)
        sync(device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with torch_profile(activities=activities) as prof:
            forward(model, ids)
            sync(device)
    finally:
        RoutedLinear.route, StackedLora.delta = route, delta
    events = prof.key_averages()
    print(f"\n#### Profile: ours, E={experts}, k={k}, one prefill forward ({device})\n")
    print(events.table(sort_by="cpu_time_total", row_limit=25))
    if cuda:
        print(events.table(sort_by="self_cuda_time_total", row_limit=12))


def ops_per_routed_module(model: torch.nn.Module, base: torch.nn.Module, ids: torch.Tensor) -> float:
    """Aten ops of one forward of ``model`` beyond those of ``base``, per routed layer: on a GPU each costs host
    time (a launch, or at least a dispatch), which is what bounds small routed layers there."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from zoo.routing import RoutedLinear

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            return func(*args, **(kwargs or {}))

    counts = []
    for m in (model, base):
        with Count() as count:
            forward(m, ids)
        counts.append(count.ops)
    return (counts[0] - counts[1]) / sum(isinstance(m, RoutedLinear) for m in model.modules())


def time_paths(size: Size, device: str, dtype: torch.dtype, repeat: int) -> None:
    """``StackedLora.delta`` alone, per dispatch path: summed over one decoder layer's 7 module shapes, times
    the layer count (the LoRA part of one forward at the bench shapes), for prefill- and decode-sized inputs.
    Pairs are each token's top-k of random scores; factors are random rank ``size.rank``."""
    shapes = [shape for name, shape in target_shapes(base_model(size)).items() if ".layers.0." in name]
    gen = torch.Generator().manual_seed(5)
    paths = ("loop", "grouped", "dense")
    print(f"\n#### Dispatch paths: StackedLora.delta alone, ms per forward ({len(shapes)} modules x {size.layers} "
          f"layers, r = {size.rank}, {dtype}, {device}, median of {repeat})\n")
    print("| tokens | E | k | " + " | ".join(paths) + " | fastest | max diff vs loop / max abs loop |")
    print("|---|---|---|" + "---|" * len(paths) + "---|---|")
    for n in (size.batch * size.seq, size.batch):
        for e in size.experts:
            for k in size.ks:
                loras, calls = [], []
                for d_out, d_in in shapes:
                    factors = [LoraFactors(torch.randn(size.rank, d_in, generator=gen) / d_in**0.5,
                                           torch.randn(d_out, size.rank, generator=gen) * 0.01) for _ in range(e)]
                    loras.append(StackedLora(factors, device, dtype))
                    h = torch.randn(n, d_in, generator=gen).to(device, dtype)
                    chosen = torch.randn(n, e, generator=gen).topk(k, dim=-1).indices.reshape(-1).to(device)
                    weight = torch.rand(n * k, generator=gen).to(device)
                    calls.append((h, k, chosen, weight))  # as the routed layer calls it: pair p is token p // k
                ms, outs = {}, {}
                for path in paths:
                    def once(path=path):
                        return [lora.delta(*args) for lora, args in zip(loras, calls, strict=True)]
                    for lora in loras:
                        lora.path = path
                    with torch.inference_mode():
                        outs[path] = once()
                        sync(device)
                        times = []
                        for _ in range(repeat):
                            start = time.perf_counter()
                            once()
                            sync(device)
                            times.append(time.perf_counter() - start)
                    ms[path] = statistics.median(times) * 1e3 * size.layers
                best = min(ms, key=ms.get)
                diff = max((o - ref).abs().max().item() / ref.abs().max().item()
                           for p in paths for o, ref in zip(outs[p], outs["loop"], strict=True))
                print(f"| {n} | {e} | {k} | " + " | ".join(f"{ms[p]:.2f}" for p in paths) + f" | {best} | {diff:.1e} |")


def fmt_mb(x: float) -> str:
    return f"{x:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    parser.add_argument("--repeat", type=int, default=None, help="timed rounds (default 5, quick 3, cuda 20)")
    parser.add_argument("--dtype", default=None, help="timing dtype (default float32 on CPU, bfloat16 on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--profile", default=None, metavar="E,K",
                        help="only profile our routed forward at E experts, top-k K (torch.profiler)")
    parser.add_argument("--paths", action="store_true",
                        help="only time StackedLora.delta alone on each dispatch path (loop, grouped, dense)")
    parser.add_argument("--dispatch", default="auto", choices=("auto", "loop", "grouped", "dense"),
                        help="dispatch path of our runtime (default auto: loop on CPU, grouped/dense on CUDA)")
    parser.add_argument("--router", default="arrow", choices=("arrow", "prompt_centroid"),
                        help="arrow (per token, vs PEFT's Arrow) or prompt_centroid (per example, vs PEFT's "
                             "mixed batch)")
    parser.add_argument("--centroid-layer", type=int, default=None,
                        help="prompt_centroid's embedding layer (default: its default scaled to the model's depth)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        StackedLora.path = spec.get("dispatch", "auto")
        print(json.dumps(child_memory(spec)))
        return
    StackedLora.path = args.dispatch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    cuda = device.startswith("cuda")
    size = SIZES[("cuda" if cuda else "cpu") + ("-quick" if args.quick else "")]
    repeat = args.repeat or (20 if cuda else 3 if args.quick else 5)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if cuda else torch.float32)
    import peft
    import transformers

    gpu = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} CPU threads"
    print(f"# routing bench: {gpu}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"PEFT {peft.__version__}, {time.strftime('%Y-%m-%d')}")
    print(f"# model: Llama, hidden {size.hidden}, intermediate {size.intermediate}, {size.layers} layers, "
          f"{size.heads}/{size.kv_heads} heads, vocab {size.vocab}; LoRA r={size.rank} on q/k/v/o/gate/up/down; "
          f"prefill batch {size.batch} x {size.seq}, decode-sized batch {size.batch} x 1; {dtype}; median of {repeat}; "
          f"dispatch {args.dispatch}")
    if args.paths:
        time_paths(size, device, dtype, repeat)
        return
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="routing-bench-"))
    try:
        (run_per_example if args.router == "prompt_centroid" else run)(args, size, device, dtype, repeat, workdir, t0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, size: Size, device: str, dtype: torch.dtype, repeat: int, workdir: Path,
        t0: float) -> None:
    """Write the experts into ``workdir``, check equal work, time, measure memory and print the report."""
    cuda = device.startswith("cuda")
    gpu = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} CPU threads"
    dirs = write_experts(size, workdir, int(args.profile.split(",")[0]) if args.profile else max(size.experts))
    base = base_model(size)  # float32 on CPU while building; cast per model after the equal-work check
    if args.profile:
        experts, k = (int(x) for x in args.profile.split(","))
        profile(size, device, dtype, base, dirs[:experts], experts, k)
        return

    configs = [Config("base", "base", 0, 0), Config("single LoRA (PEFT)", "lora", 1, 1),
               Config("single expert (ours)", "ours", 1, 1)]
    for e in size.experts:
        for k in size.ks:
            configs += [Config(f"ours E={e} k={k}", "ours", e, k), Config(f"PEFT Arrow E={e} k={k}", "peft", e, k)]

    # One model per (runtime, E); k is switched on it between runs (it is only the router's top-k).
    base.to(device)
    checks: list[dict[str, Any]] = []
    models: dict[tuple[str, int], tuple[torch.nn.Module, Any]] = {}
    for c in configs:
        key = (c.kind, c.experts)
        if key not in models:
            built = build(c.kind, base, dirs, c.experts, c.k)
            model, set_k = built[0].to(device), built[1]
            if c.kind == "ours" and c.experts > 1:
                peft_model, peft_set_k = build("peft", base, dirs, c.experts, c.k)
                peft_model.to(device)
                checks += check_equal_work(size, device, base, Config(c.label, "ours", c.experts, c.k, model, set_k),
                                           Config("peft", "peft", c.experts, c.k, peft_model, peft_set_k),
                                           built[2], size.ks)
                models[("peft", c.experts)] = (peft_model.to(dtype), peft_set_k)
            models[key] = (model.to(dtype), set_k)
        c.model, c.set_k = models[key]
    base.to(dtype)
    print(f"# setup and equal-work checks: {time.perf_counter() - t0:.0f} s")
    from zoo.routing import RoutedLinear

    routed = next(m for (kind, _), (model, _) in models.items() if kind == "ours"
                  for m in model.modules() if isinstance(m, RoutedLinear))
    print(f"# our dispatch path at {dtype} on {device}: {routed.lora.resolved_path()}")
    e_ops, k_ops = max(e for kind, e in models if kind == "ours"), max(size.ks)
    model_ops, set_k_ops = models[("ours", e_ops)]
    set_k_ops(k_ops)
    per_module = ops_per_routed_module(model_ops, base, inputs(size, device, 1, seed=2))
    print(f"# ops reaching torch's dispatcher per routed module, beyond its base layer (ours, E={e_ops}, k={k_ops}, "
          f"one decode-sized forward; views included): {per_module:.1f}")

    print("\n#### Equal work: our routed logits vs PEFT Arrow's, same inputs (float32)\n")
    print("| E | k | max abs(logits - base) | per layer: max diff / LoRA mixture | logits: max diff "
          "| tokens differing | logits: max diff with PEFT's own prototypes | PEFT prototype abs cos to exact: min / median |")
    print("|---|---|---|---|---|---|---|---|")
    for r in checks:
        print(f"| {r['E']} | {r['k']} | {r['effect']:.3g} | {r['layer_rel']:.1e} | {r['diff_exact']:.2g} | "
              f"{r['tokens_differing']:.1%} | {r['diff_own']:.3g} | {r['cos_min']:.4f} / {r['cos_median']:.6f} |")

    results: dict[str, dict[str, Any]] = {c.label: {} for c in configs}
    for phase, seq in (("prefill", size.seq), ("decode", 1)):
        t1 = time.perf_counter()
        secs = time_all(configs, inputs(size, device, seq, seed=2), device, repeat)
        for label, s in secs.items():
            results[label][phase] = s
        print(f"# timing {phase}: {time.perf_counter() - t1:.0f} s")

    if not args.no_memory:
        t1 = time.perf_counter()
        if cuda:
            for c in configs:
                results[c.label]["memory"] = cuda_memory(c, size)
        else:
            for label, m in cpu_memory(configs, size, dirs).items():
                results[label]["memory"] = m
        print(f"# memory: {time.perf_counter() - t1:.0f} s")

    report(configs, results, size)
    if args.json:
        Path(args.json).write_text(json.dumps({"size": asdict(size), "device": gpu, "checks": checks,
                                               "results": results}, indent=2))
    print(f"\n# total {time.perf_counter() - t0:.0f} s")


def report(configs: list[Config], results: dict[str, dict[str, Any]], size: Size) -> None:
    prefill_tokens, decode_tokens = size.batch * size.seq, size.batch
    memory = all("memory" in results[c.label] for c in configs)
    lora = results["single LoRA (PEFT)"]
    print("\n#### Throughput and memory\n")
    print_head(["configuration", "prefill tok/s", "prefill ms", "x single LoRA", "decode-sized tok/s", "decode ms"],
               memory)
    for c in configs:
        r = results[c.label]
        row = (f"| {c.label} | {prefill_tokens / r['prefill']:,.0f} | {r['prefill'] * 1e3:.1f} | "
               f"{r['prefill'] / lora['prefill']:.2f} | {decode_tokens / r['decode']:,.0f} | {r['decode'] * 1e3:.2f} |")
        if memory:
            row += memory_cells(r["memory"])
        print(row)

    print("\n#### Ours vs PEFT Arrow (same experts, same k)\n")
    head = "| E | k | prefill: PEFT time / ours | decode-sized: PEFT time / ours |"
    line = "|---|---|---|---|"
    if memory:
        head += " peak memory ours / PEFT | forward memory ours / PEFT |"
        line += "---|---|"
    print(head)
    print(line)
    verdict_speed, verdict_mem = [], []
    for e in size.experts:
        for k in size.ks:
            o, p = results[f"ours E={e} k={k}"], results[f"PEFT Arrow E={e} k={k}"]
            row = f"| {e} | {k} | {p['prefill'] / o['prefill']:.2f}x | {p['decode'] / o['decode']:.2f}x |"
            if e >= 32:
                verdict_speed.append(p["prefill"] > o["prefill"] and p["decode"] > o["decode"])
            if memory:
                om, pm = o["memory"], p["memory"]
                row += f" {om['peak_mb'] / pm['peak_mb']:.2f} | {om['forward_mb'] / max(pm['forward_mb'], 1e-9):.2f} |"
                if e >= 32:
                    verdict_mem.append(om["peak_mb"] < pm["peak_mb"])
            print(row)
    ratio = results["ours E=32 k=4"]["prefill"] / lora["prefill"] if "ours E=32 k=4" in results else float("nan")
    ratio_d = results["ours E=32 k=4"]["decode"] / lora["decode"] if "ours E=32 k=4" in results else float("nan")
    print("\n#### Goals\n")
    print(f"* ours at E=32, k=4 vs single LoRA (PEFT): prefill {ratio:.2f}x, decode-sized {ratio_d:.2f}x the time "
          f"(goal <= 2x): {'met' if ratio <= 2 else 'MISSED'} (prefill)")
    print(f"* faster than PEFT Arrow at E >= 32 (prefill and decode-sized): "
          f"{'met' if verdict_speed and all(verdict_speed) else 'MISSED'}")
    if memory:
        print(f"* lower peak memory than PEFT Arrow at E >= 32: {'met' if all(verdict_mem) else 'MISSED'}")


def run_per_example(args: argparse.Namespace, size: Size, device: str, dtype: torch.dtype, repeat: int,
                    workdir: Path, t0: float) -> None:
    """Per-example routing: ours (prompt_centroid) at each E and k against the base, a single LoRA and PEFT's
    mixed batch (k = 1); equal work checked first, then timing, memory and the report."""
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else f"{torch.get_num_threads()} CPU threads"
    layer = centroid_layer(size, args.centroid_layer)
    dirs = write_experts(size, workdir, max(size.experts))
    base = base_model(size).to(device)
    many, top = (32 if 32 in size.experts else max(size.experts)), max(size.example_ks)
    configs = [Config("base", "base", 0, 0), Config("single LoRA (PEFT)", "lora", 1, 1),
               Config("single expert (ours)", "centroid", 1, 1),
               Config(f"decision alone (layer {layer} of {size.layers})", "decision", many, top)]
    for e in size.experts:
        configs += [Config(f"ours E={e} k={k}", "centroid", e, k) for k in size.example_ks]
        configs.append(Config(f"PEFT mixed batch E={e} k=1", "peft-mixed", e, 1))
    configs.append(Config(f"ours E={many} k={top}, every prompt unfamiliar (uniform over {many})", "centroid", many,
                          top, fallback=True))

    models: dict[tuple[str, int], tuple[torch.nn.Module, Any]] = {}
    controls: dict[int, CentroidControl] = {}
    for c in configs:
        key = (c.kind, c.experts)
        if key not in models:
            built = build(c.kind, base, dirs, c.experts, c.k, size, layer)
            models[key] = (built[0].to(device), built[1])
            if c.kind == "centroid":
                controls[c.experts] = built[2]
        c.model, set_k = models[key]
        c.set_k = partial(set_k, fallback=True) if c.fallback else set_k
    prompts = inputs(size, device, size.seq, seed=2)
    checks = check_mixed_batch(models, controls, prompts, size.experts)
    for model, _ in models.values():
        model.to(dtype)
    print(f"# setup and equal-work checks: {time.perf_counter() - t0:.0f} s; embedding layer {layer} of {size.layers}")
    print("\n#### Equal work: ours at k = 1 vs PEFT's mixed batch given our decision (float32)\n")
    print("| E | experts chosen in the batch | max abs(logits - base) | logits: max diff |")
    print("|---|---|---|---|")
    for r in checks:
        print(f"| {r['E']} | {r['distinct']} | {r['effect']:.3g} | {r['diff']:.2g} |")

    results: dict[str, dict[str, Any]] = {c.label: {} for c in configs}
    t1 = time.perf_counter()
    record_rounds(results, "prefill", time_rounds(configs, prompts, device, repeat))
    print(f"# timing prefill: {time.perf_counter() - t1:.0f} s")
    for e, control in controls.items():  # generation's decode steps keep the prefill's decision
        settings = [(c.k, c.fallback) for c in configs if c.kind == "centroid" and c.experts == e]
        control.hold(models[("centroid", e)][0], prompts, settings)
    t1 = time.perf_counter()
    decoding = [c for c in configs if c.kind != "decision"]
    record_rounds(results, "decode", time_rounds(decoding, inputs(size, device, 1, seed=2), device, repeat,
                                                 settle=True))
    print(f"# timing decode: {time.perf_counter() - t1:.0f} s")
    if not args.no_memory and not device.startswith("cuda"):
        t1 = time.perf_counter()
        for label, m in cpu_memory(configs, size, dirs, layer).items():
            results[label]["memory"] = m
        print(f"# memory: {time.perf_counter() - t1:.0f} s")
    report_per_example(configs, results, size)
    if args.json:
        Path(args.json).write_text(json.dumps({"size": asdict(size), "device": gpu, "layer": layer, "checks": checks,
                                               "results": results}, indent=2))
    print(f"\n# total {time.perf_counter() - t0:.0f} s")


def record_rounds(results: dict[str, dict[str, Any]], phase: str, rounds: dict[str, list[float]]) -> None:
    """Each configuration's median seconds; its median over rounds of its time / the single LoRA's in the same
    round (a busy neighbour slows a whole round: the ratio within a round is steadier than medians'); and its
    fastest round over the single LoRA's fastest (interference only ever adds time)."""
    lora = rounds["single LoRA (PEFT)"]
    for label, times in rounds.items():
        results[label][phase] = statistics.median(times)
        results[label][f"{phase}_x_lora"] = statistics.median(t / ref for t, ref in zip(times, lora, strict=True))
        results[label][f"{phase}_best_x_lora"] = min(times) / min(lora)


@torch.inference_mode()
def check_mixed_batch(models: dict[tuple[str, int], tuple[torch.nn.Module, Any]],
                      controls: dict[int, CentroidControl], prompts: torch.Tensor,
                      experts: tuple[int, ...]) -> list[dict[str, Any]]:
    """float32: ours at k = 1 and PEFT's mixed batch sent to the experts ours chose must give the same logits."""
    base_logits = forward(models[("base", 0)][0], prompts).float()
    rows = []
    for e in experts:
        controls[e].set(1)
        mine = forward(models[("centroid", e)][0], prompts).float()
        mixed = models[("peft-mixed", e)][0]
        mixed.choose(controls[e].handle.state.decision)
        effect = (mine - base_logits).abs().max().item()
        diff = (mine - forward(mixed, prompts).float()).abs().max().item()
        rows.append({"E": e, "distinct": len(set(mixed.names)), "effect": effect, "diff": diff})
        if not diff <= 1e-4 * effect:
            raise AssertionError(f"E={e}: ours at k = 1 differs from PEFT's mixed batch by {diff:.3g}: not equal work")
    return rows


def print_head(columns: list[str], memory: bool) -> None:
    """A markdown table's header and rule, with the memory columns that ``memory_cells`` fills when measured."""
    columns = columns + (["state MB", "peak MB", "forward MB"] if memory else [])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def memory_cells(m: dict[str, float] | None) -> str:
    """The state / peak / forward MB cells of a table row (empty where the configuration was not measured)."""
    if not m:
        return " | | |"
    return f" {fmt_mb(m['state_mb'])} | {fmt_mb(m['peak_mb'])} | {fmt_mb(m['forward_mb'])} |"


def report_per_example(configs: list[Config], results: dict[str, dict[str, Any]], size: Size) -> None:
    prefill_tokens = size.batch * size.seq
    memory = all("memory" in results[c.label] for c in configs if not c.fallback)
    print("\n#### Per-example routing: throughput" + (" and memory" if memory else "") + "\n")
    print_head(["configuration", "prefill tok/s", "prefill ms", "x single LoRA", "best x LoRA", "decode-sized ms",
                "x single LoRA", "best x LoRA"], memory)
    for c in configs:
        r = results[c.label]
        decode = (f"{r['decode'] * 1e3:.2f} | {r['decode_x_lora']:.2f} | {r['decode_best_x_lora']:.2f}"
                  if "decode" in r else "(decided at prefill) | | ")
        row = (f"| {c.label} | {prefill_tokens / r['prefill']:,.0f} | {r['prefill'] * 1e3:.1f} | "
               f"{r['prefill_x_lora']:.2f} | {r['prefill_best_x_lora']:.2f} | {decode} |")
        if memory:
            row += memory_cells(r.get("memory"))
        print(row)
    goal = "ours E=32 k=2"
    if goal in results:
        r = results[goal]
        decision = next(results[c.label] for c in configs if c.kind == "decision")
        ratio, best = r["prefill_x_lora"], r["prefill_best_x_lora"]
        print("\n#### Goal\n")
        print(f"* {goal} vs single LoRA (PEFT): prefill {ratio:.2f}x (best rounds {best:.2f}x), decode-sized "
              f"{r['decode_x_lora']:.2f}x (best {r['decode_best_x_lora']:.2f}x) the time (goal <= 1.3x): "
              f"{'met' if ratio <= 1.3 else 'MISSED'} (prefill, median of round ratios); the decision alone is "
              f"{decision['prefill_x_lora']:.2f}x (best {decision['prefill_best_x_lora']:.2f}x) of the single LoRA's "
              "prefill time")


if __name__ == "__main__":
    main()
