import pytest
import torch
import torch.nn.functional as F

from clusterlight.losses import (
    ClusterLoss,
    ClusterMarginLoss,
    ClusterSoftmaxLoss,
    CosineDistance,
    CrossEntropy,
    MeanOverClips,
    SquaredEuclidean,
    WeightedCrossEntropy,
    inverse_frequency_weights,
)


def _problem(seed=0, b=40, d=8):
    g = torch.Generator().manual_seed(seed)
    cluster_classes = torch.tensor([0, 0, 0, 1, 2, 2])
    centroids = F.normalize(torch.randn(6, d, generator=g), dim=1)
    clusters = torch.randint(0, 6, (b,), generator=g)
    z = F.normalize(torch.randn(b, d, generator=g), dim=1)
    return z, clusters, centroids, cluster_classes


def margin_reference(z, clusters, centroids, classes, m_inter, m_intra, reduce="clusters"):
    per_cluster, per_clip = {}, []
    for i in range(len(z)):
        k = int(clusters[i])
        d = [float(((z[i] - c) ** 2).sum()) for c in centroids]
        neg = min(d[j] for j in range(len(d)) if classes[j] != classes[k])
        sibs = [d[j] for j in range(len(d)) if classes[j] == classes[k] and j != k]
        loss = max(0.0, m_inter + d[k] - neg)
        if sibs:
            loss += max(0.0, m_intra + d[k] - min(sibs))
        per_cluster.setdefault(k, []).append(loss)
        per_clip.append(loss)
    if reduce == "clips":
        return sum(per_clip) / len(per_clip)
    return sum(sum(v) / len(v) for v in per_cluster.values()) / len(per_cluster)


def softmax_reference(z, clusters, centroids, classes, t, exclude):
    per_cluster = {}
    for i in range(len(z)):
        k = int(clusters[i])
        d = [float(((z[i] - c) ** 2).sum()) for c in centroids]
        allowed = [j for j in range(len(d)) if not (exclude and classes[j] == classes[k] and j != k)]
        logits = torch.tensor([-d[j] / t for j in allowed])
        loss = float(-(logits[allowed.index(k)] - torch.logsumexp(logits, 0)))
        per_cluster.setdefault(k, []).append(loss)
    return sum(sum(v) / len(v) for v in per_cluster.values()) / len(per_cluster)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_margin_loss_matches_loop_reference(seed):
    z, clusters, centroids, classes = _problem(seed)
    got = ClusterMarginLoss(1.0, 0.2)(z, clusters, centroids, classes)
    assert float(got) == pytest.approx(margin_reference(z, clusters, centroids, classes, 1.0, 0.2), rel=1e-5)


def test_distance_and_reducer_are_pluggable():
    z, clusters, centroids, classes = _problem(4)
    # on unit vectors 1 - cos = ||z - c||^2 / 2, so halved margins give half the squared-distance loss
    assert torch.allclose(2 * CosineDistance()(z, centroids), SquaredEuclidean()(z, centroids), atol=1e-6)
    cosine = ClusterMarginLoss(0.5, 0.1, distance=CosineDistance())(z, clusters, centroids, classes)
    expected = margin_reference(z, clusters, centroids, classes, 1.0, 0.2) / 2
    assert float(cosine) == pytest.approx(expected, rel=1e-5)
    per_clip = ClusterMarginLoss(1.0, 0.2, reducer=MeanOverClips())(z, clusters, centroids, classes)
    expected = margin_reference(z, clusters, centroids, classes, 1.0, 0.2, reduce="clips")
    assert float(per_clip) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(NotImplementedError):
        ClusterLoss()(z, clusters, centroids, classes)


@pytest.mark.parametrize("exclude", [True, False])
def test_softmax_loss_matches_loop_reference(exclude):
    z, clusters, centroids, classes = _problem(3)
    got = ClusterSoftmaxLoss(0.5, exclude)(z, clusters, centroids, classes)
    assert float(got) == pytest.approx(
        softmax_reference(z, clusters, centroids, classes, 0.5, exclude), rel=1e-5
    )


def test_every_cluster_weighs_the_same():
    """Duplicating one cluster's clips must not change the loss (per-cluster mean)."""
    z, clusters, centroids, classes = _problem(4)
    loss = ClusterMarginLoss()
    mask = clusters == clusters[0]
    z2, c2 = torch.cat([z, z[mask], z[mask]]), torch.cat([clusters, clusters[mask], clusters[mask]])
    assert float(loss(z, clusters, centroids, classes)) == pytest.approx(
        float(loss(z2, c2, centroids, classes)), rel=1e-6
    )


def test_margin_loss_is_zero_when_clips_sit_on_their_centroids_and_has_gradients():
    centroids = torch.eye(4)
    classes = torch.tensor([0, 0, 1, 2])
    clusters = torch.tensor([0, 1, 2, 3])
    assert float(ClusterMarginLoss(1.0, 0.2)(centroids.clone(), clusters, centroids, classes)) == 0.0
    z = torch.randn(4, 4, requires_grad=True)
    ClusterMarginLoss()(F.normalize(z, dim=1), clusters, centroids, classes).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_margins_must_be_ordered():
    with pytest.raises(ValueError, match="must exceed"):
        ClusterMarginLoss(0.1, 0.5)


def test_inverse_frequency_weights():
    w = inverse_frequency_weights(torch.tensor([100.0, 25.0, 50.0]))
    assert w.mean() == pytest.approx(1.0)
    assert (w * torch.tensor([100.0, 25.0, 50.0])).allclose(torch.full((3,), float(w[0] * 100)))


def test_weighted_ce_matches_torch_and_needs_counts():
    logits, target = torch.randn(10, 3), torch.randint(0, 3, (10,))
    loss = WeightedCrossEntropy()
    with pytest.raises(RuntimeError, match="set_class_counts"):
        loss(logits, target)
    loss.set_class_counts(torch.tensor([6, 1, 2]))
    w = torch.tensor([1 / 6, 1.0, 0.5])
    assert float(loss(logits, target)) == pytest.approx(
        float(F.cross_entropy(logits, target, weight=w * 3 / w.sum())), rel=1e-6
    )
    assert float(CrossEntropy()(logits, target)) == pytest.approx(float(F.cross_entropy(logits, target)))
