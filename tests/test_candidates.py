"""The candidate model: one spec and one content key, kinds that check, build and apply themselves, one planner,
one reader of expert data, and catalog rows that round-trip to the same spec."""

from __future__ import annotations

import json

import pytest
import torch
from lora_testing import tiny_llama
from test_routing import EXPERT_CONFIGS, expert_dirs, peft_model, tokens  # noqa: F401  (fixtures)

from tasks.candidates import candidate_row, spec_from_row
from zoo.candidates import (
    BuildContext,
    CandidateChoices,
    CandidateSpec,
    Expert,
    ExpertPool,
    Member,
    applied,
    build_candidate,
    plan_candidates,
    read_train_pairs,
)
from zoo.routing import default_settings

A, B = Member("org/a", "1" * 40), Member("org/b", "2" * 40)


def merge(**changes) -> CandidateSpec:
    fields = {"kind": "merge", "members": (A, B), "method": "ties", "settings": {"density": 0.5},
              "base_model": "org/base", "base_revision": "3" * 40, **changes}
    return CandidateSpec(**fields)


def test_a_key_follows_what_the_candidate_computes_not_its_name_or_origin():
    spec = merge(name="cluster0-ties", clustering_id="c", cluster=0)
    # pinned: candidates the pipeline built before this spec existed keep their keys (and their folders)
    assert spec.key == "afaa0a66b42f926f"
    assert merge(name="renamed", settings={"density": 0.5}).key == spec.key
    changed = [merge(members=(A, Member("org/b", "4" * 40))), merge(base_revision="5" * 40),
               merge(settings={"density": 0.3}), merge(method="linear"), merge(members=(B, A)),
               CandidateSpec("library", (A, B), "arrow", base_model="org/base", base_revision="3" * 40)]
    assert len({spec.key, *(c.key for c in changed)}) == 1 + len(changed)
    assert spec.artifact == f"{spec.key}/adapter"
    assert changed[-1].artifact == f"{changed[-1].key}/library"
    assert CandidateSpec("base").artifact is None
    assert CandidateSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_kinds_check_members_and_methods():
    with pytest.raises(ValueError, match="unknown candidate kind"):
        CandidateSpec("ensemble")
    with pytest.raises(ValueError, match="takes 1..1 members, got 2"):
        CandidateSpec("expert", (A, B))
    with pytest.raises(ValueError, match="takes 0..0 members"):
        CandidateSpec("base", (A,))
    with pytest.raises(ValueError, match="unknown merge method"):
        CandidateSpec("merge", (A,), method="average-ish")
    with pytest.raises(KeyError, match="unknown router"):
        CandidateSpec("library", (A,), method="oracle")


def test_one_planner_names_each_candidate_once():
    c = Member("org/c", "5" * 40)
    specs = plan_candidates([A, B, c], {0: [A, B], 1: [c]}, CandidateChoices(merge_methods=["linear"],
                            routers=["arrow"]), "org/base", "3" * 40, "clustering")
    assert [s.label for s in specs] == ["base", "org/a", "org/b", "org/c", "uniform-merge", "cluster0-linear",
                                        "cluster0-arrow", "all-arrow"]
    assert specs[-1].settings == default_settings("arrow") and specs[-1].method == "arrow"
    assert specs[5].clustering_id == "clustering" and specs[5].cluster == 0 and specs[-1].cluster is None
    # the uniform merge of a single cluster's members is the same candidate as that cluster's linear merge
    same = plan_candidates([A, B], {0: [A, B]}, CandidateChoices(merge_methods=["linear"], routers=[]))
    assert [s.label for s in same] == ["base", "org/a", "org/b", "uniform-merge"]
    with pytest.raises(ValueError, match="unknown candidate options"):
        CandidateChoices.from_json({"routers": ["arrow"], "experts_only": True})


def test_catalog_rows_round_trip_to_the_same_spec():
    spec = CandidateSpec("library", (A, B), "phatgoose", {**default_settings("phatgoose"), "steps": 5}, "all-phatgoose",
                         "org/base", "3" * 40, "clustering", None)
    row = candidate_row(spec)
    assert row["candidate_key"] == spec.key and row["artifact"] == spec.artifact
    stored = {**row, "members": json.dumps(row["members"]), "settings": json.dumps(row["settings"])}
    assert spec_from_row(stored) == spec


def test_expert_data_skips_rows_that_are_not_prompt_and_target(tmp_path):
    file = tmp_path / "train.jsonl"
    file.write_text('{"prompt": "a", "target": "b"}\nnot json\n[1, 2]\n{"prompt": "c"}\n\n'
                    '{"prompt": "d", "target": 3}\n{"prompt": "e", "target": "f", "task": "t"}\n')
    assert read_train_pairs(file) == [("a", "b"), ("e", "f")]
    pool = ExpertPool.of([Expert("org/a", tmp_path, train_file=file), Expert("org/b", tmp_path)])
    assert pool.train_pairs("org/a") == [("a", "b"), ("e", "f")] and pool.train_pairs("org/b") == []


@torch.no_grad()
def test_built_candidates_apply_exactly_and_undo_exactly(expert_dirs, tmp_path):  # noqa: F811
    pool = ExpertPool.of(Expert(f"org/e{i}", d) for i, d in enumerate(expert_dirs))
    context = BuildContext(pool)
    ids = tokens()
    model = tiny_llama().eval()
    before = model(input_ids=ids).logits
    expert = CandidateSpec("expert", (Member("org/e1"),), name="e1")
    folder = build_candidate(expert, context, tmp_path)
    assert folder == tmp_path / expert.artifact and build_candidate(expert, context, tmp_path) == folder
    with applied(expert, tmp_path, model) as done:
        assert done.handle is None
        torch.testing.assert_close(model(input_ids=ids).logits, peft_model(1)(input_ids=ids).logits,
                                   rtol=1e-5, atol=1e-5)
    library = CandidateSpec("library", (Member("org/e0"), Member("org/e1")), "arrow", {"top_k": 1})
    build_candidate(library, context, tmp_path)
    with applied(library, tmp_path, model) as done:
        assert done.handle is not None and len(done.member_labels) == 2
        assert not torch.equal(model(input_ids=ids).logits, before)
    assert torch.equal(model(input_ids=ids).logits, before)
    with pytest.raises(FileNotFoundError, match="build it first"):
        with applied(CandidateSpec("merge", (Member("org/e0"),), "linear"), tmp_path, model):
            pass


@torch.no_grad()
def test_a_regmean_candidate_reads_its_members_inputs_through_the_base(expert_dirs, tmp_path):  # noqa: F811
    from transformers import AutoTokenizer

    from zoo.adapters.load import load_adapter
    from zoo.demozoo.tokenizer import build_tokenizer, save_tokenizer
    from zoo.merge import merge

    (tmp_path / "tok").mkdir()
    save_tokenizer(build_tokenizer(["abcxyz0123 "]), tmp_path / "tok", 64)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    files = []
    for i, text in enumerate(("abcabc", "xyz xyz")):
        files.append(tmp_path / f"train{i}.jsonl")
        files[-1].write_text("".join(json.dumps({"prompt": text[:k], "target": text[k:]}) + "\n" for k in (2, 3, 4)))
    pool = ExpertPool.of([Expert("org/e0", expert_dirs[0], train_file=files[0]),
                          Expert("org/e1", expert_dirs[1], train_file=files[1]), Expert("org/e2", expert_dirs[2])])
    context = BuildContext(pool, loaded=(tiny_llama().eval(), tokenizer))
    spec = CandidateSpec("merge", (Member("org/e0"), Member("org/e1"), Member("org/e2")), "regmean")
    folder = build_candidate(spec, context, tmp_path / "candidates")
    merged, average = load_adapter(folder), merge([pool.adapter(f"org/e{i}") for i in range(3)], "linear")
    q = "model.layers.0.self_attn.q_proj"
    assert merged.modules[q].rank == sum(pool.adapter(f"org/e{i}").modules[q].rank for i in range(3))
    assert not torch.allclose(merged.modules[q].delta(), average.modules[q].delta(), atol=1e-4)
    data = context.data_of(["org/e0", "org/e1", "org/e2"])
    grams = [data.grams(i, [q])[q] for i in range(3)]
    assert all(torch.allclose(g, g.T) and torch.linalg.eigvalsh(g).min() > -1e-6 for g in grams)
    assert torch.allclose(grams[2], grams[0] + grams[1])  # no data: the others' examples, pooled


@torch.no_grad()
def test_a_greedy_soup_candidate_selects_on_its_members_own_data(expert_dirs, tmp_path):  # noqa: F811
    from transformers import AutoTokenizer

    from zoo.demozoo.tokenizer import build_tokenizer, save_tokenizer
    from zoo.merge.greedy_soup import prepare

    (tmp_path / "tok").mkdir()
    save_tokenizer(build_tokenizer(["abcxyz "]), tmp_path / "tok", 64)
    file = tmp_path / "train.jsonl"
    file.write_text("".join(json.dumps({"prompt": p, "target": t}) + "\n" for p, t in (("ab", "c"), ("xy", "z"))))
    pool = ExpertPool.of(Expert(f"org/e{i}", d, train_file=file) for i, d in enumerate(expert_dirs))
    context = BuildContext(pool, loaded=(tiny_llama().eval(), AutoTokenizer.from_pretrained(tmp_path / "tok")))
    data = context.data_of(pool.names)
    soup = prepare([pool.adapter(r) for r in pool.names], data, {})
    best = min(data.score(pool.adapter(r)) for r in pool.names)
    assert soup.trace[0][1] == pytest.approx(best) and soup.kept[0] in range(3)
    for _, score, kept in soup.trace[1:]:
        assert kept == (score < best)
        best = min(best, score) if kept else best
    spec = CandidateSpec("merge", tuple(Member(r) for r in pool.names), "greedy_soup", name="soup")
    assert build_candidate(spec, context, tmp_path / "candidates").is_dir()
