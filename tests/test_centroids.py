import torch
import torch.nn.functional as F

from clusterlight.callbacks.centroids import ema_update_


def test_ema_update_math():
    mu = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    z = F.normalize(torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), dim=1)
    clusters = torch.tensor([0, 0, 1])
    sums = torch.zeros(3, 2).index_add_(0, clusters, z)
    counts = torch.bincount(clusters, minlength=3).float()
    before = mu.clone()
    ema_update_(mu, sums, counts, momentum=0.75)
    expected0 = F.normalize(0.75 * before[0] + 0.25 * torch.tensor([0.0, 1.0]), dim=0)
    expected1 = F.normalize(0.75 * before[1] + 0.25 * torch.tensor([1.0, 0.0]), dim=0)
    assert torch.allclose(mu[0], expected0) and torch.allclose(mu[1], expected1)
    assert torch.equal(mu[2], before[2])  # no clip of cluster 2 in the batch: unchanged
    assert torch.allclose(mu.norm(dim=1), torch.ones(3))
