"""int8 through PT2E (torch.export + the x86 inductor quantizer, nncompress.quantize.pt2e)
beside eager float32 and the deprecated eager torch.ao path."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

from nncompress import latency, models, quantize, train
from nncompress.quantize.pt2e import int8_pt2e, pt2e_weight_dtypes
from test_deploy import CNN_CFG, CONV1D_CFG, MLP_CFG, trained

pytestmark = pytest.mark.slow  # torch.export + calibration: seconds per test

torch.set_num_threads(1)


@pytest.mark.parametrize("cfg", [MLP_CFG, CONV1D_CFG], ids=["mlp", "conv1d"])
def test_pt2e_int8_accuracy_is_close_to_float_and_to_eager_torch_ao(cfg):
    m, tr, te = trained(cfg)
    float_acc = train.evaluate(m, te, device="cpu")["acc"]
    assert float_acc > 0.5, "the task (10 classes) must be learned for the comparison to mean something"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no notice may leak out of the library
        q = int8_pt2e(m, tr, n_calibration=512)
    acc = train.evaluate(q, te, device="cpu")["acc"]
    assert abs(acc - float_acc) <= 0.03, (acc, float_acc)
    eager = quantize.int8_static(m, tr, n_calibration=512)
    eager_acc = train.evaluate(eager, te, device="cpu")["acc"]
    assert abs(acc - eager_acc) <= 0.03, "both int8 paths implement the same arithmetic (Jacob et al. eq. 1)"
    assert [p for p in m.parameters() if p.requires_grad], "the input model is not modified"


def test_pt2e_weights_are_really_int8_and_the_float_copies_are_gone():
    torch.manual_seed(0)
    m = models.build(CNN_CFG).eval()  # conv-BN-ReLU: BN is folded into the int8 conv weights
    x = torch.randn(64, 3, 16, 16)
    q = int8_pt2e(m, x)
    dtypes = pt2e_weight_dtypes(q)
    assert len(dtypes) == 3 and set(dtypes.values()) == {torch.int8}, dtypes  # 2 convs + head
    n_weights = sum(p.numel() for n, p in m.named_parameters() if p.dim() > 1)
    int8 = sum(t.numel() for t in q.buffers() if t.dtype == torch.int8)
    assert int8 == n_weights
    floats = [n for n, p in list(q.named_parameters()) + list(q.named_buffers())
              if p.is_floating_point() and p.dim() > 1]
    assert floats == [], f"float weight copies left in the converted graph: {floats}"
    for n in (1, 5, 64):  # the export keeps the batch axis dynamic
        xb = torch.randn(n, 3, 16, 16)
        with torch.no_grad():
            f, o = m(xb), q(xb)
        assert o.shape == f.shape and (f - o).abs().max() < 0.05 * (f.max() - f.min())


def test_pt2e_bad_arguments_are_named():
    m = models.build(MLP_CFG)
    with pytest.raises(ValueError, match="n_calibration=1"):
        int8_pt2e(m, torch.randn(8, 40), n_calibration=1)
    with pytest.raises(ValueError, match="batch_size=0"):
        int8_pt2e(m, torch.randn(8, 40), batch_size=0)
    with pytest.raises(ValueError, match="calibration_inputs=list"):
        int8_pt2e(m, [torch.randn(8, 40)])
    with pytest.raises(ValueError, match="1 sample"):
        int8_pt2e(m, torch.randn(1, 40))


def test_pt2e_is_timed_with_latency_measure_beside_eager_float_and_torch_ao():
    """The three int8/float engines are timed by the one course timer; the timings are real
    (positive, ordered intervals) and the call works under measure's no_grad and thread pinning."""
    torch.manual_seed(0)
    m = models.build(CONV1D_CFG).eval()
    x = torch.randn(64, 40)
    engines = {"eager fp32": m, "torch.ao static int8": quantize.int8_static(m, x), "pt2e int8": int8_pt2e(m, x)}
    lat = {k: latency.measure(f, x[:16], threads=1, blocks=6, block_seconds=0.002) for k, f in engines.items()}
    for k, v in lat.items():
        assert 0 < v.low <= v.median <= v.high and v.threads == 1, k


@pytest.mark.slow
def test_pt2e_compiled_int8_kernels_keep_the_accuracy():
    """compile=True: inductor with frozen weights lowers the q/dq pairs to oneDNN int8 kernels.
    Their accuracy is the reference graph's (with 8-bit activations it was not on this AVX2
    CPU: 0.890 vs 0.937 - the reason reduce_range defaults to True); new batch sizes recompile."""
    m, tr, te = trained(MLP_CFG)
    float_acc = train.evaluate(m, te, device="cpu")["acc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = int8_pt2e(m, tr, n_calibration=512, compile=True)
        acc = train.evaluate(fast, te, device="cpu")["acc"]
        ref_acc = train.evaluate(int8_pt2e(m, tr, n_calibration=512), te, device="cpu")["acc"]
    assert set(pt2e_weight_dtypes(fast).values()) == {torch.int8}
    assert abs(acc - float_acc) <= 0.02 and abs(acc - ref_acc) <= 0.02, (acc, ref_acc, float_acc)
    for n in (1, 7):
        with torch.no_grad():
            assert fast(te.x[:n]).shape == (n, 10)
