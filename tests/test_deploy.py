"""ONNX export and ONNX Runtime (nncompress.deploy): same outputs as PyTorch, int8, threads."""
from __future__ import annotations

import warnings

import onnx
import pytest
import torch
import torch.nn as nn

from nncompress import data, deploy, early_exit, models, quantize, train

torch.set_num_threads(1)

MLP_CFG = {"arch": "mlp", "in_dim": 40, "hidden": [64, 32], "num_classes": 10}
CNN_CFG = {"arch": "cnn", "in_channels": 3, "num_classes": 5, "widths": [8, 16]}
CONV1D_CFG = {"arch": "conv1d", "num_classes": 10, "widths": [16, 16, 16]}
PRUNED_CONV1D_CFG = {"arch": "conv1d", "num_classes": 10, "widths": [16, 6, 9]}  # channels removed


def synthetic_task(n_train: int = 2000, n_test: int = 1000, seed: int = 0):
    """A 10-class task on 40-d inputs a small net learns in seconds: labels from a random
    linear teacher on smooth (low-pass) signals.  Returns ``(train, test)`` DeviceData."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    x = torch.nn.functional.interpolate(torch.randn(n, 1, 10, generator=g), size=40, mode="linear",
                                        align_corners=False)[:, 0]
    y = (x @ torch.randn(40, 10, generator=g)).argmax(1)
    return data.DeviceData(x[:n_train], y[:n_train]), data.DeviceData(x[n_train:], y[n_train:])


def trained(config: dict, epochs: int = 10, seed: int = 0):
    """``(model, train, test)``: ``models.build(config)`` trained on :func:`synthetic_task`."""
    tr, te = synthetic_task(seed=seed)
    torch.manual_seed(seed)
    m = models.build(config)
    train.fit(m, tr, dict(epochs=epochs, batch_size=100, lr=3e-3, schedule="constant"), device="cpu",
              progress=False)
    return m.eval(), tr, te


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    m = models.build(cfg)
    with torch.no_grad():  # non-trivial BN statistics: folding BN at export time must be right
        for bn in (x for x in m.modules() if isinstance(x, nn.modules.batchnorm._BatchNorm)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _input(cfg, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g) if cfg["arch"] == "cnn" else torch.randn(n, 40, generator=g)


@pytest.mark.parametrize("cfg", [MLP_CFG, CNN_CFG, CONV1D_CFG, PRUNED_CONV1D_CFG],
                         ids=["mlp", "simple-cnn", "conv1d", "channel-pruned-conv1d"])
def test_ort_output_equals_torch(cfg, tmp_path):
    m = _model(cfg)
    path = deploy.export_onnx(m, _input(cfg, 4), tmp_path / "m.onnx")
    assert path.exists() and list(tmp_path.iterdir()) == [path], "no temporary file may be left behind"
    sess = deploy.ort_session(path)
    for n in (1, 7, 64):  # a dynamic batch axis: other batch sizes than the example's
        x = _input(cfg, n, seed=n)
        with torch.no_grad():
            want = m(x)
        got = deploy.ort_predict(sess, x)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()


def test_export_is_eval_mode_on_a_copy_with_fixed_opset_and_named_batch_axis(tmp_path):
    m = models.build({**MLP_CFG, "dropout": 0.5}).train()  # dropout would make a train-mode export random
    path = deploy.export_onnx(m, torch.randn(4, 40), tmp_path / "m.onnx")
    assert m.training, "the caller's model keeps its mode"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == deploy.OPSET
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "logits")
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [40]
    x = torch.randn(9, 40)
    m.eval()
    assert torch.allclose(deploy.ort_predict(deploy.ort_session(path), x), m(x), atol=1e-5)


def test_export_silences_only_its_own_notice(tmp_path):
    class Noisy(nn.Module):
        def forward(self, x):
            warnings.warn("a model's own warning", UserWarning)
            return x * 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deploy.export_onnx(models.build(MLP_CFG), torch.randn(2, 40), tmp_path / "a.onnx")
        assert caught == [], [str(w.message) for w in caught]
        deploy.export_onnx(Noisy(), torch.randn(2, 40), tmp_path / "b.onnx")
    assert {(w.category, str(w.message)) for w in caught} == {(UserWarning, "a model's own warning")}


class EarlyExitInference(nn.Module):
    """Early-exit inference as a module: which exit answers depends on the data."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return early_exit.early_exit_predict(self.net, x, 0.9)


def test_data_dependent_control_flow_is_a_clear_export_error(tmp_path):
    net = models.build({"arch": "multi-exit", "backbone": "conv1d", "widths": [8, 16], "num_classes": 10,
                        "exit_pool": 2}).eval()
    deploy.export_onnx(net, torch.randn(4, 40), tmp_path / "static.onnx")  # the static network exports
    target = tmp_path / "dynamic.onnx"
    with pytest.raises(deploy.ExportError, match="EarlyExitInference.*data-dependent control flow"):
        deploy.export_onnx(EarlyExitInference(net), torch.randn(4, 40), target)
    assert list(tmp_path.iterdir()) == [tmp_path / "static.onnx"], "a failed export leaves no file"


def test_unsupported_operators_are_a_clear_export_error(tmp_path):
    # adaptive pooling to a size that does not divide the input (40 -> 20 -> 10 -> pool 4)
    net = models.build({"arch": "multi-exit", "backbone": "conv1d", "widths": [8, 16], "num_classes": 10,
                        "exit_pool": 4})
    with pytest.raises(deploy.ExportError, match="cannot export MultiExitNet.*adaptive_avg_pool1d"):
        deploy.export_onnx(net, torch.randn(4, 40), tmp_path / "m.onnx")
    # eager torch.ao int8 kernels have no ONNX symbolic
    with pytest.raises(deploy.ExportError, match="cannot export MLP.*linear_dynamic"):
        deploy.export_onnx(quantize.int8_dynamic(models.build(MLP_CFG)), torch.randn(4, 40), tmp_path / "q.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="example=list"):
        deploy.export_onnx(models.build(MLP_CFG), [1.0], tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="opset=9"):
        deploy.export_onnx(models.build(MLP_CFG), torch.randn(2, 40), tmp_path / "m.onnx", opset=9)
    path = deploy.export_onnx(models.build(MLP_CFG), torch.randn(2, 40), tmp_path / "m.onnx")
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"threads={bad!r}"):
            deploy.ort_session(path, threads=bad)
    with pytest.raises(ValueError, match="data=Tensor"):
        deploy.ort_accuracy(deploy.ort_session(path), torch.randn(3, 40))
    with pytest.raises(ValueError, match="calibration_inputs"):
        deploy.ort_int8_static(path, tmp_path / "s.onnx", torch.empty(0, 40))


@pytest.mark.parametrize("threads", [1, 2])
def test_session_threads_are_respected(threads, tmp_path):
    path = deploy.export_onnx(models.build(MLP_CFG), torch.randn(2, 40), tmp_path / "m.onnx")
    sess = deploy.ort_session(path, threads=threads)
    opts = sess.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (threads, 1)
    assert str(opts.execution_mode).endswith("ORT_SEQUENTIAL")
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert deploy.session_threads(sess) == threads
    lat = deploy.ort_latency(sess, torch.randn(8, 40), blocks=6, block_seconds=0.002)
    assert lat.threads == threads and lat.blocks == 6 and lat.low <= lat.median <= lat.high
    other = 3 - threads
    with pytest.raises(ValueError, match=f"threads={other}.*opened with {threads}"):
        deploy.ort_latency(sess, torch.randn(8, 40), threads=other)


def test_ort_latency_times_the_session_through_latency_measure(tmp_path, monkeypatch):
    """One timing function for the course: ort_latency goes through nncompress.latency.measure."""
    from nncompress import latency

    calls = []
    real = latency.measure

    def spy(run, *args, **kw):
        calls.append(kw)
        return real(run, *args, **kw)

    monkeypatch.setattr(latency, "measure", spy)
    path = deploy.export_onnx(models.build(MLP_CFG), torch.randn(2, 40), tmp_path / "m.onnx")
    deploy.ort_latency(deploy.ort_session(path), torch.randn(8, 40), blocks=6, block_seconds=0.002)
    assert calls == [{"threads": 1, "blocks": 6, "block_seconds": 0.002}]


def _float_initializers(path) -> int:
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).size for t in onnx.load(str(path)).graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT)


@pytest.mark.parametrize("cfg", [MLP_CFG, CONV1D_CFG], ids=["mlp", "conv1d"])
def test_ort_int8_accuracy_is_close_to_float_and_weights_are_int8(cfg, tmp_path):
    m, tr, te = trained(cfg)
    float_acc = train.evaluate(m, te, device="cpu")["acc"]
    assert float_acc > 0.5, "the task (10 classes) must be learned for the comparison to mean something"
    path = deploy.export_onnx(m, te.x[:4], tmp_path / "f.onnx")
    assert deploy.int8_initializers(path) == 0
    assert deploy.ort_accuracy(deploy.ort_session(path), te) == pytest.approx(float_acc, abs=1e-6)  # float32 mean in evaluate
    dyn = deploy.ort_int8_dynamic(path, tmp_path / "dyn.onnx")
    static = deploy.ort_int8_static(path, tmp_path / "static.onnx", tr.x[:256])
    n_weights = sum(p.numel() for name, p in m.named_parameters() if name.endswith("weight"))
    for q in (dyn, static):
        assert deploy.int8_initializers(q) >= n_weights, f"{q.name}: every weight is stored in int8"
        assert _float_initializers(q) < 0.1 * n_weights, f"{q.name}: no float copy of the weights is kept"
        acc = deploy.ort_accuracy(deploy.ort_session(q), te)
        assert abs(acc - float_acc) <= 0.03, (q.name, acc, float_acc)
    from onnx import numpy_helper

    int8 = [numpy_helper.to_array(t) for t in onnx.load(str(static)).graph.initializer
            if t.data_type == onnx.TensorProto.INT8]
    assert max(int(abs(a.astype(int)).max()) for a in int8) <= 64, \
        "reduce_range: 7-bit weights (no u8 x s8 pair saturation on CPUs without VNNI)"


def test_bench_sparse_kernel_computes_the_masked_model_and_the_tables_render():
    from nncompress import prune
    from nncompress.course import bench

    dense = models.build({"arch": "mlp", "in_dim": 784, "hidden": [300, 100], "num_classes": 10}).eval()
    masked = prune.remove_masks(prune.prune_to_sparsity(dense, 0.9, scope="layer")).eval()
    x = torch.randn(5, 784)
    with torch.no_grad():
        assert torch.allclose(bench._csr_mlp(masked)(x), masked(x), atol=1e-5)
    rows = bench.sparsity_latency(sparsities=(0.9,), batches=(1,))
    assert [r["sparsity"] for r in rows] == [0.0, 0.9]
    assert set(rows[1]["ms"]) == {"masked (dense kernel)", "physically pruned", "sparse CSR kernel"}
    md = "\n".join(bench._deploy_markdown({"threads_all": 1, "rows": [], "notes": []}, rows))
    assert "| 1 | 90% |" in md and "sparse CSR kernel" in md


def test_bench_frontier_table_says_whether_the_front_was_stable():
    from nncompress.course import bench

    rows = [{"run": 1, "status": "ok", "seconds": 50.0, "front_latency": ["a", "b"], "front_bytes": ["x"]},
            {"run": 2, "status": "ok", "seconds": 40.0, "front_latency": ["a", "b"], "front_bytes": ["x"]},
            {"run": 3, "status": "ok", "seconds": 41.0, "front_latency": ["a"], "front_bytes": ["x"]}]
    md = "\n".join(bench._frontier_markdown(rows))
    assert "| 3 | ok | 41.0 | a | False | x | True |" in md
    assert "same in all 3 runs: **False**" in md
    assert "same in all 2 runs: **True**" in "\n".join(bench._frontier_markdown(rows[:2]))
