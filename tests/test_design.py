import pytest
import torch
import torch.nn as nn

from nncompress import design, models
from nncompress.metrics import count_flops, count_params

torch.set_num_threads(1)


@pytest.mark.parametrize("k,cin,cout", [(3, 2, 4), (3, 16, 32), (5, 8, 24), (1, 7, 3)])
def test_standard_and_separable_conv_counts(k, cin, cout):
    std = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
    assert count_params(std) == design.standard_conv_params(k, cin, cout) == k * k * cin * cout
    dw = nn.Conv2d(cin, cin, k, padding=k // 2, groups=cin, bias=False)
    pw = nn.Conv2d(cin, cout, 1, bias=False)
    assert count_params(dw) + count_params(pw) == design.separable_conv_params(k, cin, cout) == k * k * cin + cin * cout
    assert count_params(design.DepthwiseSeparable(cin, cout, k=k)) == design.separable_conv_params(k, cin, cout, bn=True)
    assert count_params(design.StandardConv(cin, cout, k=k)) == design.standard_conv_params(k, cin, cout, bn=True)


def test_lecture_notes_example_two_in_four_out():
    # seed 002: 3x3x2 = 18 depthwise + 2x4 = 8 pointwise = 26, against 3x3x2x4 = 72
    assert design.separable_conv_params(3, 2, 4) == 26
    assert design.standard_conv_params(3, 2, 4) == 72


@pytest.mark.parametrize("k,cin,cout", [(3, 2, 4), (3, 32, 64), (5, 16, 128), (7, 3, 10)])
def test_separable_over_standard_ratio_is_one_over_o_plus_one_over_k2(k, cin, cout):
    ratio = design.separable_conv_params(k, cin, cout) / design.standard_conv_params(k, cin, cout)
    assert ratio == pytest.approx(1 / cout + 1 / k**2)
    assert design.separable_ratio(k, cout) == pytest.approx(ratio)
    # the same ratio holds for MACs at any output resolution, and the flop counter agrees
    h = 8
    std_m = design.conv_macs(k, cin, cout, h, h)
    sep_m = design.separable_conv_macs(k, cin, cout, h, h)
    assert sep_m / std_m == pytest.approx(1 / cout + 1 / k**2)
    layer = design.DepthwiseSeparable(cin, cout, k=k)
    assert count_flops(layer, (cin, h, h)) == 2 * sep_m
    assert count_flops(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), (cin, h, h)) == 2 * std_m


@pytest.mark.parametrize("cin,cout,expand,stride", [(16, 16, 6, 1), (16, 24, 6, 2), (32, 16, 1, 1), (8, 8, 4, 1)])
def test_inverted_residual_counts(cin, cout, expand, stride):
    block = design.InvertedResidual(cin, cout, stride, expand)
    assert count_params(block) == design.inverted_residual_params(cin, cout, expand)
    assert block.use_skip == (stride == 1 and cin == cout)
    h = 8
    assert count_flops(block, (cin, h, h)) == 2 * design.inverted_residual_macs(cin, cout, expand, h, h, stride=stride)
    assert block(torch.randn(2, cin, h, h)).shape == (2, cout, h // stride, h // stride)


def test_inverted_residual_bottleneck_is_linear():
    block = design.InvertedResidual(8, 8, 1, 6)
    assert not isinstance(block.conv[-1][-1], (nn.ReLU, nn.ReLU6)), "the projection must have no activation"


@pytest.mark.parametrize("cin,cout,groups,stride", [(24, 24, 2, 1), (24, 48, 3, 2), (32, 64, 4, 2), (16, 16, 4, 1)])
def test_shuffle_unit_counts(cin, cout, groups, stride):
    unit = design.ShuffleUnit(cin, cout, stride, groups)
    assert count_params(unit) == design.shuffle_unit_params(cin, cout, groups, stride=stride)
    assert unit(torch.randn(2, cin, 8, 8)).shape == (2, cout, 8 // stride, 8 // stride)


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert design.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert design.channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    y = torch.randn(2, 12, 3, 3)
    assert torch.equal(design.channel_shuffle(design.channel_shuffle(y, 3), 4), y)  # (3,4) then (4,3): inverse
    with pytest.raises(ValueError, match="groups"):
        design.channel_shuffle(y, 5)


@pytest.mark.parametrize("cin,s,e1,e3", [(96, 16, 64, 64), (128, 32, 128, 128), (10, 3, 5, 7)])
def test_fire_counts(cin, s, e1, e3):
    fire = design.Fire(cin, s, e1, e3)
    assert count_params(fire) == design.fire_params(cin, s, e1, e3)
    assert fire(torch.randn(1, cin, 6, 6)).shape == (1, e1 + e3, 6, 6)


def test_squeezenet_fire2_matches_paper_table():
    # SqueezeNet table 1, fire2: 96 -> s 16, e1 64, e3 64: 11,920 parameters (biases included)
    assert design.fire_params(96, 16, 64, 64) == 11920


@pytest.mark.parametrize("block", design.BLOCKS)
def test_design_net_is_a_feature_model(block):
    net = design.DesignNet(block=block, widths=(16, 32), strides=(1, 2))
    x = torch.randn(2, 3, 32, 32)
    logits, feats = net(x, return_features=True)
    assert logits.shape == (2, 10) and list(feats) == list(net.feature_names)
    assert torch.equal(net.eval()(x), net(x, return_features=True)[0])


def test_width_and_resolution_multipliers():
    base = design.DesignNet(widths=(32, 64, 128), strides=(1, 2, 2))
    half = design.DesignNet(widths=(32, 64, 128), strides=(1, 2, 2), alpha=0.5)
    low = design.DesignNet(widths=(32, 64, 128), strides=(1, 2, 2), rho=0.5)
    f_base, f_half, f_low = (count_flops(m, (3, 32, 32)) for m in (base, half, low))
    # MobileNets sec. 3.3/3.4: cost ~ alpha^2 (roughly: depthwise terms are linear in alpha) and ~ rho^2
    assert 0.2 < f_half / f_base < 0.35
    assert f_low / f_base == pytest.approx(0.25, rel=0.05)
    assert count_params(low) == count_params(base)
    assert count_params(half) < 0.35 * count_params(base)
    with pytest.raises(ValueError, match="alpha"):
        design.DesignNet(alpha=0)
    with pytest.raises(ValueError, match="block='dense'"):
        design.DesignNet(block="dense")


def test_scale_channels_rounds_like_make_divisible():
    assert design.scale_channels(32, 1.0) == 32
    assert design.scale_channels(32, 0.5) == 16
    assert design.scale_channels(32, 0.35, 8) == 16  # 11.2 -> 8 is < 90 %, so 16
    assert design.scale_channels(10, 0.1) == 4


def test_build_rejects_unknown_settings():
    assert isinstance(models.build({"arch": "design", "block": "fire"}), design.DesignNet)
    with pytest.raises(ValueError, match="widht"):
        models.build({"arch": "design", "widht": [8]})


def test_for_data_fills_the_data_and_refuses_another_family():
    class _Splits:
        num_classes, input_shape = 7, (1, 32, 32)

    net = design.for_data({"block": "shuffle", "widths": [16, 32], "strides": [1, 2]}, _Splits())
    assert net.head.out_features == 7 and net.stem[0].in_channels == 1
    assert models.build(net.arch_config()).arch_config() == net.arch_config()
    with pytest.raises(ValueError, match="arch='cnn'"):
        design.for_data({"arch": "cnn"}, _Splits())


def test_mobilenet_v2_flops_and_params_match_the_paper():
    tv = pytest.importorskip("torchvision")
    model = tv.models.mobilenet_v2()  # architecture only, random weights
    macs = count_flops(model, (3, 224, 224)) / 2
    assert macs == pytest.approx(300e6, rel=0.03), macs  # Sandler et al. 2018, table 4: 300M
    # table 4: 3.4M; torchvision's count (3,504,872) includes BN scales/shifts and biases
    assert count_params(model) == pytest.approx(3.4e6, rel=0.04)


def test_layer_macs_kinds_and_total_match_the_flop_counter():
    from nncompress.metrics import count_flops
    net = design.DesignNet(3, 10, block="separable", widths=[16, 32], strides=[1, 2], stem=16)
    rows = design.layer_macs(net, (3, 32, 32))
    assert [r["kind"] for r in rows] == ["stem", "depthwise", "pointwise", "depthwise", "pointwise", "head"]
    assert sum(r["macs"] for r in rows) == count_flops(net, (3, 32, 32)) // 2
    # by hand: stem 3x3x3x16 at 32x32; first depthwise 3x3x16 at 32x32; head 32 x 10
    assert rows[0]["macs"] == 9 * 3 * 16 * 32 * 32
    assert rows[1]["macs"] == 9 * 16 * 32 * 32
    assert rows[-1]["macs"] == 32 * 10


def test_predicted_width_ratio_is_exact_with_actual_channels_and_not_alpha_squared():
    from nncompress.metrics import count_flops
    cfg = dict(block="separable", widths=[16, 32, 64], strides=[1, 2, 2], stem=16)
    big, small = design.DesignNet(3, 10, alpha=1.0, **cfg), design.DesignNet(3, 10, alpha=0.25, **cfg)
    rows, rows_small = design.layer_macs(big, (3, 32, 32)), design.layer_macs(small, (3, 32, 32))
    measured = count_flops(small, (3, 32, 32)) / count_flops(big, (3, 32, 32))
    assert abs(design.predicted_width_ratio(rows, 1.0, 0.25, rows_small) - measured) < 1e-9
    # widths 16/32/64 at 0.25 round exactly to 4/8/16: the nominal prediction is exact too
    assert abs(design.predicted_width_ratio(rows, 1.0, 0.25) - measured) < 1e-9
    assert 1 / measured < 0.5 * 16  # far from alpha^2: stem and depthwise scale with alpha only
    # a pure pointwise network follows alpha^2
    pw = [{"kind": "pointwise", "macs": 100, "cin": 8, "cout": 8}]
    assert design.predicted_width_ratio(pw, 1.0, 0.5) == 0.25
    with pytest.raises(ValueError, match="alpha_from"):
        design.predicted_width_ratio(rows, 0.0, 1.0)
