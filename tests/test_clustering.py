import torch

from clusterlight.clusters import balanced_assign, cluster_counts, kmeans, split_classes_into_clusters


def _blobs(k=4, n=50, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 10
    x = torch.cat([centers[i] + 0.3 * torch.randn(n, d, generator=g) for i in range(k)])
    return x, torch.arange(k).repeat_interleave(n)


def test_kmeans_recovers_separable_blobs():
    x, truth = _blobs()
    _, labels = kmeans(x, 4, iters=30, generator=torch.Generator().manual_seed(1))
    # each true blob maps to exactly one cluster and vice versa
    pairs = {(int(t), int(lab)) for t, lab in zip(truth, labels)}
    assert len(pairs) == 4 and len({lab for _, lab in pairs}) == 4


def test_kmeans_is_seeded():
    x, _ = _blobs(seed=2)
    a = kmeans(x, 6, generator=torch.Generator().manual_seed(5))[1]
    b = kmeans(x, 6, generator=torch.Generator().manual_seed(5))[1]
    assert torch.equal(a, b)


def test_empty_clusters_are_reseeded_not_nan():
    x, _ = _blobs(k=2, n=20)
    init = torch.cat([x[:2], torch.full((3, 3), 1e6)])  # three centroids far from every point
    centroids, labels = kmeans(x, 5, iters=5, init=init)
    assert torch.isfinite(centroids).all()
    assert torch.bincount(labels, minlength=5).min() > 0


def test_cluster_counts_follow_the_cluster_size():
    assert cluster_counts([240, 40, 80, 640]) == [6, 1, 2, 16]
    assert cluster_counts([240, 40, 80, 640], cluster_size=80) == [3, 1, 1, 8]
    assert cluster_counts([100, 36, 35, 702]) == [3, 1, 1, 20]


def test_split_classes_into_clusters_layout_and_warm_start():
    x, _ = _blobs(k=4, n=30)
    labels = torch.tensor([0] * 60 + [1] * 60)  # class 0 = blobs 0,1; class 1 = blobs 2,3
    cents, assign, classes = split_classes_into_clusters(
        x, labels, [2, 1], generator=torch.Generator().manual_seed(0)
    )
    assert classes.tolist() == [0, 0, 1]
    assert set(assign[:60].tolist()) <= {0, 1} and set(assign[60:].tolist()) == {2}
    assert torch.allclose(cents.norm(dim=1), torch.ones(3))
    again, assign2, _ = split_classes_into_clusters(x, labels, [2, 1], init=cents)
    assert torch.equal(assign, assign2)  # a warm start from converged centroids keeps the partition


def test_balanced_kmeans_evens_out_cluster_sizes():
    g = torch.Generator().manual_seed(0)
    # one dense blob of 300 points and a sparse one of 60: plain k-means gives the sparse blob
    # clusters of a few points and the dense blob clusters many times larger
    x = torch.cat([0.05 * torch.randn(300, 8, generator=g), 3 + torch.randn(60, 8, generator=g)])
    plain = torch.bincount(kmeans(x, 12, generator=torch.Generator().manual_seed(1))[1], minlength=12)
    even = torch.bincount(
        kmeans(x, 12, generator=torch.Generator().manual_seed(1), balanced=True)[1], minlength=12
    )
    assert plain.max() - plain.min() > 30
    assert even.tolist() == [30] * 12


def test_balanced_assign_keeps_nearest_centroids_within_capacity():
    dist = torch.tensor([[0.0, 4.0], [0.1, 3.0], [4.0, 0.0], [3.0, 0.2]])
    assert balanced_assign(dist).tolist() == [0, 0, 1, 1]
    crowded = torch.tensor(
        [[0.0, 4.0], [0.1, 3.0], [0.2, 1.0], [3.0, 0.2]]
    )  # three points nearest centroid 0
    assert balanced_assign(crowded).tolist() == [0, 0, 1, 1]  # the farthest of the three moves
    uneven = balanced_assign(torch.rand(10, 3, generator=torch.Generator().manual_seed(0)))
    assert torch.bincount(uneven, minlength=3).max() <= 4
