"""RegMean against its dense closed form ``(sum_i dW_i G_i)(sum_i G_i)^-1`` on small shapes, and the plain
average when every Gram is the identity."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest
import torch
from lora_testing import dense, random_adapter

from zoo.adapters import Adapter
from zoo.merge import merge
from zoo.merge.regmean import regularised

SHAPES = {"layers.0.q": (12, 10), "layers.0.up": (16, 10), "layers.1.q": (12, 10)}


class RandomGrams:
    """Symmetric positive definite Grams ``X^T X`` of random inputs per adapter and module (or identities)."""

    def __init__(self, adapters: Sequence[Adapter], seed: int, identity: bool = False) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.stored: list[dict[str, torch.Tensor]] = []
        for adapter in adapters:
            own = {}
            for name, f in adapter.modules.items():
                x = torch.randn(40, f.d_in, generator=gen, dtype=torch.float64) * torch.rand(f.d_in, generator=gen)
                own[name] = torch.eye(f.d_in, dtype=torch.float64) if identity else x.T @ x
            self.stored.append(own)
        self.asked: list[int] = []

    def grams(self, adapter: int, modules: Collection[str]) -> dict[str, torch.Tensor]:
        self.asked.append(adapter)
        return {m: self.stored[adapter][m].clone() for m in modules}


def test_regmean_equals_its_dense_closed_form():
    adapters = [random_adapter(0, rank=3, shapes=SHAPES),
                random_adapter(1, rank=2, shapes={k: v for k, v in SHAPES.items() if k != "layers.0.up"}),
                random_adapter(2, rank=4, shapes=SHAPES)]
    data = RandomGrams(adapters, seed=7)
    weights = [1.0, 0.5, 2.0]
    merged = merge(adapters, "regmean", weights=weights, data=data, alpha=0.8)
    assert data.asked == [0, 1, 2]  # each expert's Grams read once
    for name in SHAPES:
        owners = [i for i, a in enumerate(adapters) if name in a.modules]
        grams = {i: regularised(data.stored[i][name], 0.8) for i in owners}
        numerator = sum(weights[i] * dense(adapters[i])[name] @ grams[i] for i in owners)
        expected = numerator @ torch.linalg.inv(sum(grams.values()))
        assert merged.modules[name].rank == sum(adapters[i].modules[name].rank for i in owners)  # exact, low rank
        torch.testing.assert_close(merged.modules[name].delta().double(), expected, rtol=1e-4, atol=1e-5)


def test_with_identity_grams_regmean_is_the_plain_average():
    adapters = [random_adapter(i, rank=2 + i, shapes=SHAPES) for i in range(3)]
    merged = merge(adapters, "regmean", data=RandomGrams(adapters, seed=0, identity=True))
    average = merge(adapters, "linear")
    for name in SHAPES:
        torch.testing.assert_close(merged.modules[name].delta(), average.modules[name].delta(), rtol=1e-5, atol=1e-6)


def test_regmean_without_data_says_what_it_needs():
    with pytest.raises(ValueError, match="needs the experts' layer inputs"):
        merge([random_adapter(0, shapes=SHAPES)], "regmean")


class ScoredByTarget:
    """Scores a merge by its distance to a target update (lower is better), recording every score asked for."""

    def __init__(self, target: dict[str, torch.Tensor]) -> None:
        self.target, self.scores = target, []

    def score(self, merged: Adapter) -> float:
        value = sum(float((merged.modules[m].delta().double() - t).norm()) for m, t in self.target.items())
        self.scores.append(value)
        return value


def test_greedy_soup_keeps_an_expert_only_when_the_soup_gets_better():
    from zoo.merge.greedy_soup import prepare

    good = [random_adapter(i, rank=2, shapes=SHAPES) for i in range(2)]
    noise = random_adapter(9, rank=2, shapes=SHAPES)
    target = {m: (dense(good[0])[m] + dense(good[1])[m]) / 2 for m in SHAPES}  # the soup of the two good ones
    adapters = [noise, good[0], good[1]]
    data = ScoredByTarget(target)
    soup = prepare(adapters, data, {})
    assert soup.kept == (1, 2)
    best = data.scores[soup.trace[0][0]]
    for index, score, kept in soup.trace[1:]:  # never adds an expert that does not improve its score
        assert kept == (score < best)
        best = min(best, score) if kept else best
    merged = merge(adapters, "greedy_soup", data=ScoredByTarget(target))
    for name in SHAPES:
        torch.testing.assert_close(merged.modules[name].delta().double(), target[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="own data"):
        merge(adapters, "greedy_soup")
