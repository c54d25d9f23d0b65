"""Peer imbalance losses against their published formulas, written out by hand."""

import math

import pytest
import torch

from clusterlight.data.sampling import OversamplingSampler
from clusterlight.losses import ClassBalancedLoss, FocalLoss, LDAMLoss, LogitAdjustedLoss

COUNTS = torch.tensor([60.0, 10.0, 20.0, 300.0])


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(12, 4, generator=g), torch.randint(0, 4, (12,), generator=g)


def _softmax_row(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def test_focal_loss_formula():
    logits, target = _batch()
    ref = (
        sum(
            -((1 - _softmax_row(row.tolist())[t]) ** 2) * math.log(_softmax_row(row.tolist())[t])
            for row, t in zip(logits, target.tolist())
        )
        / 12
    )
    assert float(FocalLoss(2.0)(logits, target)) == pytest.approx(ref, rel=1e-5)


def test_class_balanced_loss_formula():
    logits, target = _batch(1)
    beta = 0.99
    w = [(1 - beta) / (1 - beta**n) for n in COUNTS.tolist()]
    w = [x * 4 / sum(w) for x in w]
    num = sum(w[t] * -math.log(_softmax_row(row.tolist())[t]) for row, t in zip(logits, target.tolist()))
    den = sum(w[t] for t in target.tolist())
    loss = ClassBalancedLoss(beta)
    loss.set_class_counts(COUNTS)
    assert float(loss(logits, target)) == pytest.approx(num / den, rel=1e-5)


def test_ldam_margins_and_drw():
    logits, target = _batch(2)
    loss = LDAMLoss(max_margin=0.5, scale=2.0, drw_epoch=3, drw_beta=0.999)
    loss.set_class_counts(COUNTS)
    m = [n**-0.25 for n in COUNTS.tolist()]
    m = [x * 0.5 / max(m) for x in m]
    assert loss.margins().tolist() == pytest.approx(m)
    assert max(m) == pytest.approx(0.5) and m[1] == max(m)  # the rarest class gets the largest margin

    def reference(weights):
        num = den = 0.0
        for row, t in zip(logits.tolist(), target.tolist()):
            z = [2.0 * (v - (m[t] if j == t else 0.0)) for j, v in enumerate(row)]
            num += weights[t] * -math.log(_softmax_row(z)[t])
            den += weights[t]
        return num / den

    assert float(loss(logits, target)) == pytest.approx(reference([1.0] * 4), rel=1e-5)
    loss.set_epoch(3)
    w = [(1 - 0.999) / (1 - 0.999**n) for n in COUNTS.tolist()]
    assert float(loss(logits, target)) == pytest.approx(reference([x * 4 / sum(w) for x in w]), rel=1e-5)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_logit_adjusted_loss_formula(tau):
    logits, target = _batch(3)
    prior = [n / float(COUNTS.sum()) for n in COUNTS.tolist()]
    ref = (
        sum(
            -math.log(_softmax_row([v + tau * math.log(p) for v, p in zip(row, prior)])[t])
            for row, t in zip(logits.tolist(), target.tolist())
        )
        / 12
    )
    loss = LogitAdjustedLoss(tau)
    loss.set_class_counts(COUNTS)
    assert float(loss(logits, target)) == pytest.approx(ref, rel=1e-5)


def test_oversampling_sampler_balances_classes_and_shards():
    labels = torch.tensor([0] * 900 + [1] * 100)
    s = OversamplingSampler(labels, rank=0, world=1, seed=0)
    drawn = labels[list(s)]
    assert len(drawn) == 1000 and abs(float(drawn.float().mean()) - 0.5) < 0.06
    s.set_epoch(1)
    assert list(s) != list(OversamplingSampler(labels, 0, 1, 0))
    r0, r1 = OversamplingSampler(labels, 0, 2, 0), OversamplingSampler(labels, 1, 2, 0)
    assert len(list(r0)) == len(list(r1)) == 500
