import pytest
import torch

from nncompress import metrics, models


@pytest.mark.parametrize("name,shape", [("mlp-64", (40,)), ("conv1d-16", (40,)), ("cnn-small", (3, 32, 32)),
                                        ("resnet20", (3, 32, 32)), ("resnet8x4", (3, 32, 32)),
                                        ("wrn-16-2", (3, 32, 32))])
def test_forward_and_named_features(name, shape):
    cfg = {**models.named_config(name), "num_classes": 7}
    if cfg["arch"] == "mlp":
        cfg["in_dim"] = 40
    m = models.build(cfg).eval()
    x = torch.randn(2, *shape)
    logits, feats = m(x, return_features=True)
    assert logits.shape == (2, 7)
    assert tuple(feats) == m.feature_names
    assert torch.equal(m(x), logits)


def test_resnet_parameter_counts_match_the_literature():
    # He et al. 2016: ResNet-20 0.27M, ResNet-56 0.85M, ResNet-110 1.7M; RepDistiller resnet32x4 7.43M
    counts = {n: metrics.count_params(models.build({"arch": n, "num_classes": 10}))
              for n in ("resnet20", "resnet56", "resnet110")}
    assert round(counts["resnet20"] / 1e6, 2) == 0.27
    assert round(counts["resnet56"] / 1e6, 2) == 0.86
    assert round(counts["resnet110"] / 1e6, 1) == 1.7
    assert round(metrics.count_params(models.build({"arch": "resnet32x4", "num_classes": 100})) / 1e6, 2) == 7.43


def test_mlp_parameter_count_formula():
    m = models.MLP(784, [300, 100], 10)  # LeNet-300-100: 784*300+300 + 300*100+100 + 100*10+10
    assert metrics.count_params(m) == 266610


def test_build_errors():
    with pytest.raises(ValueError, match="arch='vgg'"):
        models.build({"arch": "vgg", "num_classes": 10})
    with pytest.raises(ValueError, match="depth=21"):
        models.CifarResNet(depth=21)
    with pytest.raises(ValueError, match="model='nope'"):
        models.named_config("nope")


def test_separable_conv1d_parameter_count_closed_form():
    from nncompress.metrics import count_params
    from nncompress.models import Conv1DNet, build, named_config

    m = Conv1DNet(10, (8, 16), separable=True)
    # per stage: depthwise 5*cin (no bias) + pointwise cin*cout + cout; head 16*10 + 10
    assert count_params(m) == (5 * 1 + 1 * 8 + 8) + (5 * 8 + 8 * 16 + 16) + (16 * 10 + 10)
    assert m(torch.randn(2, 40)).shape == (2, 10)
    full = build({**named_config("conv1d-64"), "num_classes": 10})
    sep = build({**named_config("conv1d-64-sep"), "num_classes": 10})
    assert count_params(sep) < count_params(full) / 4


def _complete(cfg: dict) -> dict:
    cfg = {**cfg, "num_classes": 7}
    if cfg["arch"] == "mlp":
        cfg["in_dim"] = 40
    return cfg


@pytest.mark.parametrize("name", [*models.NAMED, "design", "multi-exit"])
def test_arch_config_rebuilds_the_same_architecture(name):
    cfg = _complete(models.named_config(name)) if name in models.NAMED else \
        {"arch": name, "widths": [16, 32], "num_classes": 7, **({"strides": [1, 2]} if name == "design" else {})}
    m = models.build(cfg)
    again = models.build(m.arch_config())
    assert again.arch_config() == m.arch_config()
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}
    # the config read back keeps every setting the caller gave (a wide ResNet preset comes back
    # as its depth's preset with the widths and stem spelled out)
    given = {k: v for k, v in cfg.items() if not (k == "arch" and v in ("resnet8x4", "resnet32x4"))}
    assert {k: v for k, v in m.arch_config().items() if k in given} == given


def test_every_family_is_built_by_models_build():
    assert set(models.ARCHS) >= {"mlp", "cnn", "conv1d", "wrn", "resnet20", "design", "multi-exit"}
    assert isinstance(models.build({"arch": "design", "block": "fire"}), models.DesignNet)
    assert isinstance(models.build({"arch": "multi-exit", "widths": [8], "num_classes": 3}), models.MultiExitNet)


def test_arch_config_of_an_assembled_multi_exit_net_is_refused():
    net = models.MultiExitNet([torch.nn.Identity()], [torch.nn.Identity()], [0])
    with pytest.raises(ValueError, match="assembled from modules"):
        net.arch_config()
