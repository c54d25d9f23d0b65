from pathlib import Path

import pytest
import torch
import yaml

from clusterlight.features import LogMel
from clusterlight.nets import Backbone, CNNEmbedder, LSTMEmbedder, create_backbone


def test_logmel_shapes_and_pooling():
    wave = torch.randn(3, 16000)
    assert LogMel(n_mels=64).eval()(wave).shape == (3, 64, 101)
    assert LogMel(n_mels=40, time_pool=4).eval()(wave).shape == (3, 40, 26)


def test_specaugment_only_in_training():
    fe = LogMel(n_mels=32, freq_masks=2, freq_mask_width=8, time_masks=2, time_mask_width=10)
    wave = torch.randn(2, 16000)
    torch.manual_seed(0)
    train = fe.train()(wave)
    clean = fe.eval()(wave)
    assert not torch.equal(train, clean)
    assert torch.equal(clean, fe.eval()(wave))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("lstm", {"hidden": 32, "embed_dim": 16}),
        ("cnn", {"channels": [8, 16], "embed_dim": 16}),
        ("cnn", {"channels": [8, 16], "embed_dim": 16, "convs_per_block": 1, "channels_last": True}),
    ],
)
def test_backbones_forward_backward(name, kwargs):
    net = create_backbone(name, n_mels=32, **kwargs)
    x = torch.randn(4, 32, 50, requires_grad=True)
    z = net(x)
    assert z.shape == (4, 16) and net.embed_dim == 16
    z.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_cnn_layout_and_depth_options():
    one = CNNEmbedder(n_mels=32, channels=[8, 16], embed_dim=16, convs_per_block=1)
    two = CNNEmbedder(n_mels=32, channels=[8, 16], embed_dim=16, convs_per_block=2)
    conv_count = lambda net: sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())  # noqa: E731
    assert (conv_count(one), conv_count(two)) == (2, 4)
    last = CNNEmbedder(n_mels=32, channels=[8, 16], embed_dim=16, convs_per_block=1, channels_last=True)
    last.load_state_dict(one.state_dict())  # same weights, only the memory layout differs
    x = torch.randn(3, 32, 40)
    torch.testing.assert_close(last.eval()(x), one.eval()(x), rtol=1e-4, atol=1e-5)
    assert last.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_registry_by_subclassing():
    assert Backbone.registry["lstm"] is LSTMEmbedder and Backbone.registry["cnn"] is CNNEmbedder
    assert isinstance(create_backbone("lstm", n_mels=32, embed_dim=8), LSTMEmbedder)
    with pytest.raises(KeyError, match="unknown backbone 'gru'"):
        create_backbone("gru")
    with pytest.raises(ValueError, match="backbone name 'lstm' is taken by LSTMEmbedder"):

        class Another(Backbone, name="lstm"):
            pass


def test_every_registered_backbone_has_its_net_config():
    """Adding a backbone is one Python file plus one YAML in configs/model/net/: this pins the YAML."""
    root = Path(__file__).resolve().parents[1] / "configs" / "model" / "net"
    for name, cls in Backbone.registry.items():
        if not cls.__module__.startswith("clusterlight."):
            continue  # defined by a test
        cfg = yaml.safe_load((root / f"{name}.yaml").read_text())
        backbone = cfg["model"]["init_args"]["backbone"]
        assert backbone["class_path"] in (
            f"{cls.__module__}.{cls.__name__}",
            f"clusterlight.nets.{cls.__name__}",
        )
        frontend = cfg["model"]["init_args"]["frontend"]["init_args"]
        assert backbone["init_args"]["n_mels"] == frontend["n_mels"], name
