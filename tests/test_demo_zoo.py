"""The demo zoo's task suite and build machinery, without building a zoo (seconds)."""

from __future__ import annotations

import json
import re

import pytest

from zoo.demozoo import make_suite
from zoo.demozoo.build import fingerprint
from zoo.demozoo.cached_build import MARKER, is_built
from zoo.demozoo.profiles import PROFILES, get_profile
from zoo.demozoo.tasks import HELD_IN, HELD_OUT, profile_skills, read_jsonl, write_jsonl
from zoo.demozoo.tokenizer import build_tokenizer

TINY = get_profile("tiny")


def test_task_generation_is_seeded() -> None:
    assert make_suite(TINY, seed=0) == make_suite(TINY, seed=0)
    other = make_suite(TINY, seed=1)
    assert [t.name for t in other] == [t.name for t in make_suite(TINY, seed=0)]
    assert other != make_suite(TINY, seed=0)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_suite_has_families_skills_templates_and_both_splits(profile: str) -> None:
    families, _ = profile_skills(get_profile(profile), seed=0)
    assert len(families) == get_profile(profile).families or len(families) >= 4
    for skills in families.values():
        assert len(skills) >= 3 + 1  # at least three trained in every profile, and one more
        assert all(len(s.templates) >= 3 for s in skills)

    suite = make_suite(get_profile(profile), seed=0)
    kinds = {t.kind for t in suite}
    assert kinds == {"trained", "paraphrase", "unseen-skill", "composition"}
    for task in suite:
        assert task.split == (HELD_IN if task.kind == "trained" else HELD_OUT)
        assert task.test and all(e.task == task.name and e.split == task.split for e in task.test)
        assert bool(task.train) == (task.kind == "trained")
    trained = [t for t in suite if t.kind == "trained"]
    assert len(trained) == len(families) * get_profile(profile).trained_skills_per_family
    for task in trained:  # templates the experts never see are only in the paraphrase tasks
        paraphrase = next(t for t in suite if t.name == task.name + "-paraphrase")
        seen = {e.template for e in task.train}
        assert all(e.template in seen for e in task.test)
        assert not {e.template for e in paraphrase.test} & seen


def test_held_in_test_inputs_are_never_trained_on() -> None:
    for task in make_suite(TINY, seed=0):
        if task.kind != "trained":
            continue
        train_prompts = {e.prompt for e in task.train}
        if task.family == "lookups":  # facts: the held-in test is recall of trained facts
            assert {e.prompt for e in task.test} <= train_prompts
            continue
        assert not train_prompts & {e.prompt for e in task.test}
        if task.family in ("strings", "lists"):  # sampled inputs: held-out inputs, not just prompts
            pattern = r'"\w+"' if task.family == "strings" else r"\[[A-Z,]+\]"
            trained_inputs = {m for p in train_prompts for m in re.findall(pattern, p)}
            assert not trained_inputs & {m for e in task.test for m in re.findall(pattern, e.prompt)}


def test_examples_round_trip_through_jsonl(tmp_path) -> None:
    examples = make_suite(TINY, seed=0)[0].train[:5]
    write_jsonl(tmp_path / "x.jsonl", examples)
    assert read_jsonl(tmp_path / "x.jsonl") == list(examples)
    first = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "target", "task", "skill", "family", "template", "split"}


def test_tokenizer_is_character_level_and_deterministic() -> None:
    texts = [e.prompt + e.target for e in make_suite(TINY, seed=0)[0].train]
    a, b = build_tokenizer(texts), build_tokenizer(texts)
    assert a.to_str() == b.to_str()
    encoding = a.encode('reverse "abc": cba')
    assert encoding.tokens[0] == "<s>" and encoding.tokens[1:4] == ["r", "e", "v"]
    assert a.decode(encoding.ids, skip_special_tokens=True) == 'reverse "abc": cba'


def test_marker_fingerprint_decides_whether_a_build_is_reused(tmp_path) -> None:
    wanted = fingerprint("tiny", 0)
    assert wanted != fingerprint("tiny", 1) and wanted != fingerprint("small", 0)
    assert not is_built(tmp_path, wanted)  # no marker: a half-written folder never counts
    (tmp_path / MARKER).write_text(json.dumps({**wanted, "seconds": 1.0}))
    assert is_built(tmp_path, wanted)
    (tmp_path / MARKER).write_text(json.dumps({**wanted, "source": "other code"}))
    assert not is_built(tmp_path, wanted)


def test_unknown_profile_is_refused(tmp_path) -> None:
    from zoo.demozoo import build_zoo

    with pytest.raises(ValueError, match="unknown demo zoo profile"):
        build_zoo(tmp_path / "zoo", profile="huge")
