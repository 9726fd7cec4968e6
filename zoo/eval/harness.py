"""``evaluate``: every candidate on one loaded base model, scored the same way on the same suite.

Each candidate's folder is built once (``zoo.candidates``; kept in ``candidates_dir`` when given, else in a
scratch folder), then applied to the loaded base in place and undone, so the base is loaded once and what
is scored is exactly the folder that a pipeline logs and registers. Scoring (``zoo.eval.scoring``) runs
generation and the NLL once per task and computes every registered metric from them. Single experts feed
the oracle (the best expert per task, ``zoo.eval.ranking``), an upper reference computed from their rows,
not run again.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from zoo.candidates import BuildContext, CandidateSpec, ExpertPool, applied, build_candidate
from zoo.eval.cost import measured
from zoo.eval.ranking import best_per_task
from zoo.eval.results import CandidateResult, Cost, EvalResults, TaskScore
from zoo.eval.routing_accuracy import routing_score
from zoo.eval.scoring import score_model
from zoo.eval.suite import EvalExample, by_task, limit_per_task

ORACLE = "oracle"
Progress = Callable[[str], None]
OnResult = Callable[[CandidateResult], None]


def evaluate(
    candidates: Sequence[CandidateSpec],
    suite: Sequence[EvalExample],
    base_model_path: str | Path,
    pool: ExpertPool | None = None,
    *,
    candidates_dir: str | Path | None = None,
    max_examples: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    routing_accuracy: bool = True,
    oracle: bool = True,
    generate: bool = True,
    threads: int | None = 1,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
    keep_going: bool = False,
) -> EvalResults:
    """Score ``candidates`` on ``suite`` (at most ``max_examples`` per task) over the base at ``base_model_path``.

    ``pool`` resolves the experts the candidates name (needed only to build). ``candidates_dir``: where the
    candidates' folders are, or are built and kept (default: a scratch folder, removed after). With
    ``oracle`` and at least one ``expert`` candidate, an ``oracle`` row (best single expert per task) is appended. ``threads``: torch CPU threads
    while scoring (restored after; ``None`` leaves them): on shared cores one thread was measured many
    times faster than several fighting for them, and it makes the timings comparable. ``generate=False``
    scores the NLL alone (metrics that need a completion are NaN): the cheap pass of ``zoo.eval.screening``.

    One base load serves every candidate, so a shard of a scaled-out run is one call. ``on_result`` gets
    each candidate's result as soon as it is scored (a shard saves it at once: a shard handed out again
    scores only what is missing). ``keep_going``: a candidate that fails to build or score is named in
    ``EvalResults.failed`` with the reason, and the others are still scored.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = [c.label for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must be unique, got {names}")
    tasks = by_task(limit_per_task(suite, max_examples))
    if not tasks:
        raise ValueError("the suite holds no examples")
    tokenizer = AutoTokenizer.from_pretrained(base_model_path)
    model = AutoModelForCausalLM.from_pretrained(base_model_path).to(device).eval()
    context = BuildContext(pool or ExpertPool({}), Path(base_model_path), device, loaded=(model, tokenizer))
    results: list[CandidateResult] = []
    failed: dict[str, str] = {}
    with _torch_threads(threads), tempfile.TemporaryDirectory(prefix="zoo-candidates-") as scratch:
        folders = Path(candidates_dir) if candidates_dir is not None else Path(scratch)
        for spec in candidates:
            if progress:
                progress(f"scoring {spec.label}")
            try:
                result = _score_candidate(spec, model, tokenizer, context, folders, tasks, batch_size, device,
                                          routing_accuracy, generate)
            except Exception as err:
                if not keep_going:
                    raise
                failed[spec.label] = f"{type(err).__name__}: {err}"
                continue
            results.append(result)
            if on_result:
                on_result(result)
    experts = [r for r in results if r.kind == "expert"]
    if oracle and experts:
        results.append(best_per_task(experts, ORACLE))
    settings = {"max_examples": max_examples, "batch_size": batch_size, "device": device, "threads": threads,
                "generate": generate,
                "examples": sum(len(v) for v in tasks.values()), "tasks": len(tasks)}
    return EvalResults(base_model=str(base_model_path), candidates=results, settings=settings, failed=failed)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _score_candidate(spec: CandidateSpec, model: torch.nn.Module, tokenizer, context: BuildContext,
                     candidates_dir: Path, tasks: dict[str, list[EvalExample]], batch_size: int, device: str,
                     routing_accuracy: bool, generate: bool = True) -> CandidateResult:
    with measured(device) as meter:
        started = time.perf_counter()
        build_candidate(spec, context, candidates_dir)
        with applied(spec, candidates_dir, model) as done:
            built = time.perf_counter()
            scores = []
            for task, examples in tasks.items():
                metrics = score_model(model, tokenizer, examples, batch_size=batch_size, generate=generate)
                n = int(metrics.pop("n"))
                scores.append(TaskScore(task, examples[0].split, n, metrics))
            scored = time.perf_counter()
            routing = []
            if routing_accuracy and done.handle is not None:
                routing = [routing_score(model, done.handle, tokenizer, examples, done.member_labels, batch_size)
                           for examples in tasks.values()]
    cost = Cost(build_s=built - started, eval_s=scored - built, peak_mb=meter.peak_mb, memory=meter.memory)
    return CandidateResult(name=spec.label, kind=spec.kind, key=spec.key, tasks=scores, cost=cost,
                           routing=routing, spec=spec.to_json())
