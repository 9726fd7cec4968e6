"""How well could any router pick a demo-zoo task's expert from the base model's inputs? Ceilings beside Arrow.

    .venv/bin/python bench/routing_ceiling.py                  # tiny zoo (built if missing), about 2 minutes
    .venv/bin/python bench/routing_ceiling.py --profile small  # small zoo, about 6 minutes
    .venv/bin/python bench/routing_ceiling.py ZOO_DIR --no-logistic
    .venv/bin/python bench/routing_ceiling.py --selection-em   # + held-in EM with one voted expert per example

Per-token routers read what a routed layer reads: the input of each module that two or more experts adapt,
in the *base* model, for every token of ``<s> prompt target </s>`` of a held-in task's test examples
(teacher-forced, as the harness's routing accuracy sees them). Each picks one expert per token and module;
a pick counts for "skill" if the expert was trained on the task's skill, for "family" if on its family.

* ``arrow``: ``|<h, v_e>|`` with the experts' own prototypes (what an Arrow library routes by, top-1).
* ``phatgoose``: standardised ``<h, g_e>`` with gates trained as the harness trains them (its defaults).
* ``centroid`` (supervised): cosine of ``h - mu`` to each expert's task mean input minus ``mu`` (``mu``: the
  mean over all tasks), means taken on the task's *training* examples: one vector per expert, fitted to the
  expert's own data, no negatives (PHATGOOSE's situation, with the answer handed over).
* ``lda`` (supervised): the same centroids after whitening by the pooled input covariance (shrunk by 1 %).
* ``logistic`` (supervised, with negatives): a multinomial logistic regression per module on every task's
  training tokens: how much of the task is linearly present in the input at all.

Columns: "all" (every token), "target" (target tokens only) and "sequence": one pick per example and
module, from the router's scores averaged over the prompt tokens (what a per-sequence routing mode would do);
"vote": one expert per example, the one most modules picked at the "sequence" level. ``--selection-em``
then answers every held-in test example with its vote's expert alone (greedy, PEFT) and reports the exact
match, beside the task's own expert answering everything.

If even ``logistic`` is low, no per-token router over these inputs can route the zoo; if ``logistic`` is high
but ``centroid`` low, the information is there but only a discriminatively trained router finds it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from itertools import product
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from zoo.adapters import load_adapter
from zoo.algebra.prototypes import arrow_prototypes
from zoo.demozoo import build_zoo
from zoo.demozoo.tasks import load_suite
from zoo.eval.text import collate, encode_pair
from zoo.routing import GateTrainingConfig
from zoo.routing.phatgoose import PhatgooseScorer, train_gates

ROUTERS = ("arrow", "phatgoose", "centroid", "lda", "logistic")


def module_inputs(model: torch.nn.Module, tokenizer, modules: list[str], examples) -> tuple[dict, torch.Tensor]:
    """``{module: (inputs (batch, seq, d_in), token mask, target mask)}`` for ``examples``, and their prompt lengths."""
    store: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(m).register_forward_hook(lambda _, args, __, m=m: store.__setitem__(m, args[0]))
             for m in modules]
    pairs = [encode_pair(tokenizer, e.prompt, e.target) for e in examples]
    batch = collate(pairs, tokenizer.pad_token_id)
    try:
        with torch.no_grad():
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for hook in hooks:
            hook.remove()
    mask = batch["attention_mask"].bool()
    prompt_len = torch.tensor([p[1] for p in pairs])[:, None]
    target = mask & (torch.arange(mask.shape[1])[None] >= prompt_len)
    return {m: (store[m], mask, target) for m in modules}, prompt_len


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zoo_dir", nargs="?", type=Path)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--train-examples", type=int, default=64, help="training examples per task (supervised)")
    parser.add_argument("--test-examples", type=int, default=48, help="test examples per task")
    parser.add_argument("--no-logistic", action="store_true", help="skip the logistic probe (the slow one)")
    parser.add_argument("--selection-em", action="store_true",
                        help="also score held-in exact match with one expert per example, the vote's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    zoo_dir = args.zoo_dir or build_zoo(Path(".zoo/demo-zoo") / f"{args.profile}-0", profile=args.profile)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    base_dir = zoo_dir / manifest["base_model"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    experts = manifest["experts"]
    adapters = [load_adapter(zoo_dir / e["repo_id"]) for e in experts]
    prototypes = [arrow_prototypes(a) for a in adapters]
    tasks = {t.name: t for t in load_suite(zoo_dir) if t.kind == "trained"}
    examples = {i: [(x.prompt, x.target) for x in tasks[e["task"]].train] for i, e in enumerate(experts)}
    gates = train_gates(model, tokenizer, adapters, examples, GateTrainingConfig())  # the harness's defaults
    modules = sorted(m for m in {m for p in prototypes for m in p} if sum(m in p for p in prototypes) >= 2)
    train = {n: module_inputs(model, tokenizer, modules, t.train[: args.train_examples])[0] for n, t in tasks.items()}
    test = {n: module_inputs(model, tokenizer, modules, t.test[: args.test_examples]) for n, t in tasks.items()}
    routers = [r for r in ROUTERS if r != "logistic" or not args.no_logistic]

    hits, chance, choices = measure(experts, tasks, modules, prototypes, gates, train, test, routers)
    table = Table(title=f"Routing from the base's inputs, {zoo_dir.name}: share of picks of the task's skill / family")
    levels = ("all", "target", "sequence", "vote")
    for column in ("router", *(f"{label}: {level}" for label in ("skill", "family") for level in levels)):
        table.add_column(column, justify="left" if column == "router" else "right")
    for router in routers:
        table.add_row(router, *(f"{rate(hits[(router, t, lab)]):.3f}" for lab in ("skill", "family") for t in levels))
    table.add_row("chance", *(f"{rate(chance[t]):.3f}" for t in levels[:3]), "", "", "", "", "")
    console = Console(width=120)
    console.print(table)
    if args.selection_em:
        own = {name: [[i for i, e in enumerate(experts) if e["task"] == name][0]] * len(test[name][1])
               for name in tasks}
        choices.update({("task's own expert", name): chosen for name, chosen in own.items()})
        em = selection_em(choices, tasks, experts, zoo_dir, base_dir, tokenizer, args.test_examples)
        table = Table(title="Held-in exact match if each example went to its vote's expert alone (mean over tasks)")
        table.add_column("selection")
        table.add_column("held-in EM", justify="right")
        for router, value in em.items():
            table.add_row(router, f"{value:.3f}")
        console.print(table)


def selection_em(choices: dict, tasks: dict, experts: list[dict], zoo_dir: Path, base_dir: Path, tokenizer,
                 n: int) -> dict[str, float]:
    """Per router, the mean over tasks of the exact match when every example is answered by its chosen expert."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from zoo.eval.generation import greedy_completions

    answers: dict[tuple[int, str], dict[int, bool]] = {}  # (expert, task) -> example index -> correct
    for (router, name), chosen in choices.items():
        for expert in set(chosen):
            if (expert, name) in answers:
                continue
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir),
                                              zoo_dir / experts[expert]["repo_id"]).eval()
            examples = tasks[name].test[:n]
            outputs = greedy_completions(model, tokenizer, [e.prompt for e in examples], max_new_tokens=24)
            answers[(expert, name)] = {i: out.strip() == e.target for i, (out, e) in enumerate(zip(outputs, examples))}
    per_router: dict[str, list[float]] = defaultdict(list)
    for (router, name), chosen in choices.items():
        per_router[router].append(sum(answers[(e, name)][i] for i, e in enumerate(chosen)) / len(chosen))
    return {router: sum(v) / len(v) for router, v in per_router.items()}


def measure(experts: list[dict], tasks: dict, modules: list[str], prototypes: list[dict], gates: dict, train: dict,
            test: dict, routers: list[str]) -> tuple[dict, dict, dict]:
    """``hits[(router, level, label)] = [hits, picks]`` and ``chance[level]`` (uniform picks), summed over modules;
    ``choices[(router, task)]``: the expert each test example's vote picks."""
    hits: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    chance: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    votes = {(router, name): torch.zeros(len(test[name][1]), len(experts)) for router in routers for name in tasks}
    for module in modules:
        owners = [i for i, p in enumerate(prototypes) if module in p]
        scorers = fit_routers(module, owners, experts, prototypes, gates, train, routers)
        for name, task in tasks.items():
            (inputs, mask, target), prompt_len = test[name][0][module], test[name][1]
            truths = {"skill": torch.tensor([experts[i]["task"] == name for i in owners]),
                      "family": torch.tensor([experts[i]["family"] == task.family for i in owners])}
            # Picks are scored only where the task's expert adapts the module; every module votes (a router
            # does not know where the right expert is).
            possible = bool(truths["skill"].any())
            prompt = (torch.arange(mask.shape[1])[None] < prompt_len).float()[..., None]
            for router in routers:
                scores = scorers[router](inputs)
                picks = {"all": scores.argmax(-1)[mask], "target": scores.argmax(-1)[target],
                         "sequence": ((scores * prompt).sum(1) / prompt.sum(1)).argmax(-1)}
                votes[(router, name)][torch.arange(len(inputs)), torch.tensor(owners)[picks["sequence"]]] += 1
                if not possible:
                    continue
                for (level, chosen), (label, truth) in product(picks.items(), truths.items()):
                    hits[(router, level, label)][0] += int(truth[chosen].sum())
                    hits[(router, level, label)][1] += len(chosen)
            for level, n in (("all", int(mask.sum())), ("target", int(target.sum())), ("sequence", len(inputs))):
                if possible:
                    chance[level][0] += float(truths["skill"].float().mean()) * n
                    chance[level][1] += n
    choices = {key: counts.argmax(1).tolist() for key, counts in votes.items()}  # each example: the majority
    for (router, name), chosen in choices.items():
        for label, key in (("skill", "task"), ("family", "family")):
            wanted = name if key == "task" else tasks[name].family
            hits[(router, "vote", label)][0] += sum(experts[e][key] == wanted for e in chosen)
            hits[(router, "vote", label)][1] += len(chosen)
    return hits, chance, choices


def fit_routers(module: str, owners: list[int], experts: list[dict], prototypes: list[dict], gates: dict, train: dict,
                routers: list[str]) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Per router, a function from inputs ``(..., d_in)`` to scores ``(..., len(owners))``."""
    samples = {i: flat(train[experts[i]["task"]][module]) for i in owners if experts[i]["task"] in train}
    pooled = torch.cat(list(samples.values()))
    mu = pooled.mean(0)
    means = torch.stack([samples[i].mean(0) - mu for i in owners])
    covariance = torch.cov(pooled.T) + 1e-2 * pooled.var(0).mean() * torch.eye(pooled.shape[1])
    whiten = torch.linalg.inv(torch.linalg.cholesky(covariance)).T  # x @ whiten has identity covariance
    arrow = torch.stack([prototypes[i][module] for i in owners])
    lda = means @ whiten
    gate = PhatgooseScorer(torch.stack([gates[i][module] for i in owners]), torch.zeros(len(owners), dtype=torch.bool))
    out = {
        "arrow": lambda h: (h @ arrow.T).abs(),
        "phatgoose": lambda h: gate(h.reshape(-1, h.shape[-1])).reshape(*h.shape[:-1], len(owners)),
        "centroid": lambda h: torch.nn.functional.normalize(h - mu, dim=-1) @ torch.nn.functional.normalize(
            means, dim=-1).T,
        "lda": lambda h: ((h - mu) @ whiten) @ torch.nn.functional.normalize(lda, dim=-1).T,
    }
    if "logistic" in routers:
        out["logistic"] = logistic(samples, owners)
    return out


def logistic(samples: dict[int, torch.Tensor], owners: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = torch.cat([samples[i] for i in owners]).numpy()
    y = [k for k, i in enumerate(owners) for _ in range(len(samples[i]))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)

    def scores(h: torch.Tensor) -> torch.Tensor:
        flat_h = h.reshape(-1, h.shape[-1]).numpy()
        return torch.from_numpy(clf.decision_function(flat_h)).reshape(*h.shape[:-1], len(owners))
    return scores


def flat(entry: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    inputs, mask, _ = entry
    return inputs[mask]


def rate(cell: list) -> float:
    return cell[0] / cell[1] if cell[1] else float("nan")


if __name__ == "__main__":
    main()
