"""Task suites as JSONL: one example per line (prompt, target, task, split, and skill/family when known).

A suite file is the whole contract between a zoo and the harness: any zoo whose tasks can be written
this way can be evaluated (``zoo demo-zoo suite`` writes the demo zoo's).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

HELD_IN = "held-in"
HELD_OUT = "held-out"
SPLITS = (HELD_IN, HELD_OUT)


@dataclass(frozen=True)
class EvalExample:
    """One scored example; ``skill``/``family`` label it for routing accuracy (``None`` when unknown)."""

    prompt: str
    target: str
    task: str
    split: str
    skill: str | None = None
    family: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"task {self.task!r}: split must be one of {SPLITS}, got {self.split!r}")


def existing_suite(path: str | Path) -> Path:
    """``path``, refused with what a suite is when no file is there."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no task suite at {path}: a JSONL file of prompt, target, task, split")
    return path


def read_suite(path: str | Path) -> list[EvalExample]:
    """Read a suite JSONL file; unknown fields (the demo zoo's ``template``) are ignored. A missing file, a line
    that is not a JSON object with the four fields, or a file without examples is refused, naming the line."""
    path = existing_suite(path)
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err.msg}); a suite line is one JSON object") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}:{number}: a suite line is a JSON object, got {type(raw).__name__}")
        try:
            examples.append(EvalExample(prompt=raw["prompt"], target=raw["target"], task=raw["task"],
                                        split=raw["split"], skill=raw.get("skill"), family=raw.get("family")))
        except KeyError as err:
            raise ValueError(f"{path}:{number}: missing field {err}; a suite line needs prompt, target, task, "
                             "split") from None
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
    if not examples:
        raise ValueError(f"{path}: the suite holds no examples")
    return examples


def write_suite(path: str | Path, examples: Iterable[EvalExample]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in examples), encoding="utf-8")
    return path


def by_task(examples: Sequence[EvalExample]) -> dict[str, list[EvalExample]]:
    """Examples grouped by task, tasks in first-seen order; a task must keep one split."""
    tasks: dict[str, list[EvalExample]] = {}
    for e in examples:
        group = tasks.setdefault(e.task, [])
        if group and group[0].split != e.split:
            raise ValueError(f"task {e.task!r} is both {group[0].split} and {e.split}")
        group.append(e)
    return tasks


def limit_per_task(examples: Sequence[EvalExample], max_examples: int | None) -> list[EvalExample]:
    """The first ``max_examples`` examples of each task (all with ``None``)."""
    if max_examples is None:
        return list(examples)
    return [e for group in by_task(examples).values() for e in group[:max_examples]]
