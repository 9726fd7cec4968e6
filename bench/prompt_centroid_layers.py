"""Which decoder layer should ``prompt_centroid`` embed prompts at? Chosen on held-in data only.

For each layer, the router is fitted on the experts' own training prompts (as a library build does) and
decides on the held-in test prompts of a built demo zoo: the share whose top expert was trained on the
prompt's task, and the share that fell back as unfamiliar. Held-out tasks are never read.

    .venv/bin/python bench/prompt_centroid_layers.py DIR [--threads 1] [--layers 2,4,8,16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from flows.cli.demo_zoo import demo_zoo_suite
from zoo.candidates.context import BuildContext
from zoo.demozoo.pool import demo_zoo_experts
from zoo.eval.suite import HELD_IN
from zoo.routing.prompt_centroid.router import PromptCentroidConfig, PromptCentroidFit, PromptCentroidRouter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo", type=Path, help="a built demo zoo folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layers", default="2,4,6,8,12,16,20,24,30")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = demo_zoo_experts(args.zoo)
    names = pool.names
    base = args.zoo / json.loads((args.zoo / "zoo.json").read_text())["base_model"]
    context = BuildContext(pool, base)
    data = context.data_of(names)
    model, tokenizer = context.base_model()
    tokenizer.padding_side = "left"
    experts = [pool.adapter(n) for n in names]
    tasks = [pool[n].labels["task"] for n in names]
    held_in = [e for e in demo_zoo_suite(args.zoo) if e.split == HELD_IN]
    router = PromptCentroidRouter()
    for layer in (int(x) for x in args.layers.split(",")):
        started = time.perf_counter()
        config = PromptCentroidConfig(layer=layer)
        fitted = router.fit(experts, config, PromptCentroidFit(), data)
        hits = fell_back = 0
        for start in range(0, len(held_in), 64):
            chunk = held_in[start:start + 64]
            enc = tokenizer([e.prompt for e in chunk], return_tensors="pt", padding=True)
            decision = router.decide(model, enc["input_ids"], enc["attention_mask"], fitted.state, config)
            top = decision.experts[torch.arange(len(chunk)), decision.weights.argmax(1)].tolist()
            for example, expert, unfamiliar in zip(chunk, top, decision.fallback.tolist(), strict=True):
                fell_back += unfamiliar
                hits += (not unfamiliar) and tasks[expert] == example.task
        print(f"layer {layer:2d}: held-in task accuracy {hits / len(held_in):.3f}, fell back "
              f"{fell_back / len(held_in):.3f} ({len(held_in)} prompts, {time.perf_counter() - started:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
