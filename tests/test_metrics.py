import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from nncompress import metrics


def test_flops_of_a_linear_layer_are_2mn():
    m = nn.Linear(40, 10, bias=False)
    assert metrics.count_flops(m, (40,)) == 2 * 40 * 10


def test_flops_of_a_conv_layer():
    m = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert metrics.count_flops(m, (3, 16, 16)) == 2 * 3 * 8 * 9 * 16 * 16


def test_nonzero_sees_through_prune_masks():
    m = nn.Sequential(nn.Linear(10, 10))
    prune.l1_unstructured(m[0], "weight", amount=0.3)
    assert metrics.count_params(m) == 110
    assert metrics.count_nonzero(m) == 110 - 30


def test_bytes_and_latency():
    m = nn.Linear(100, 100)
    assert metrics.model_bytes(m) > 4 * 100 * 100
    assert metrics.measure_latency(m, (100,), warmup=1, repeats=3) > 0


def test_ledger_table():
    led = metrics.Ledger()
    led.add("lin", nn.Linear(4, 2), input_shape=(4,), latency=False, note="x")
    t = led.table()
    assert t.loc["lin", "params"] == 10 and t.loc["lin", "note"] == "x"
    assert list(led.deterministic().columns) == ["params", "nonzero", "flops", "bytes"]
