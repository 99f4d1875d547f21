"""Tests of the chapter-12 glue (nncompress.pipeline) and the frontier plot."""
import copy
import math

import pytest
import torch

from nncompress import metrics, models, pipeline as pl, plots, prune, quantize as q
from nncompress.data import DeviceData


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


ROWS = [{"model": "A", "bytes": 100, "latency_ms": 5.0, "acc": 50.0},
        {"model": "B", "bytes": 200, "latency_ms": 1.0, "acc": 60.0},
        {"model": "C", "bytes": 300, "latency_ms": 2.0, "acc": 55.0},   # dominated by B on both costs
        {"model": "D", "bytes": 100, "latency_ms": 9.0, "acc": 40.0},   # dominated by A on bytes
        {"model": "E", "bytes": 400, "latency_ms": 9.0, "acc": 70.0}]


FAST = {"blocks": 6, "block_seconds": 0.002}


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 40, generator=g)
    y = (x[:, :20].sum(1) > 0).long() + 2 * (x[:, 20:].sum(1) > 0).long()
    return DeviceData(x, y)


def test_pareto_front_by_hand():
    assert pl.pareto_front(ROWS, "bytes") == ["A", "B", "E"]
    assert pl.pareto_front(ROWS, "latency_ms") == ["B", "E"]
    # equal rows do not dominate each other: both stay
    twins = [{"model": "x", "bytes": 1, "acc": 1.0}, {"model": "y", "bytes": 1, "acc": 1.0}]
    assert pl.pareto_front(twins, "bytes") == ["x", "y"]
    with pytest.raises(KeyError, match="flops"):
        pl.pareto_front(ROWS, "flops")


def test_pareto_front_accepts_a_dataframe():
    import pandas as pd

    assert pl.pareto_front(pd.DataFrame(ROWS).set_index("model"), "bytes") == ["A", "B", "E"]


def test_best_under_budget():
    assert pl.best_under(ROWS, "bytes", 250)["model"] == "B"
    assert pl.best_under(ROWS, "bytes", 100)["model"] == "A"
    assert pl.best_under(ROWS, "latency_ms", 2.0)["model"] == "B"
    assert pl.best_under(ROWS, "bytes", 99) is None


def test_derive_caches_the_trained_step():
    calls = []

    def train(m):
        calls.append(1)
        with torch.no_grad():
            m.weight.fill_(3.0)

    key = {"parent": "p", "step": 1}
    a = pl.derive("unit-step", key, lambda: torch.nn.Linear(2, 2), train)
    b = pl.derive("unit-step", key, lambda: torch.nn.Linear(2, 2), train)
    assert len(calls) == 1 and torch.equal(a.weight, b.weight) and float(b.weight.detach()[0, 0]) == 3.0
    assert a.cache_key == b.cache_key
    c = pl.derive("unit-step", {**key, "step": 2}, lambda: torch.nn.Linear(2, 2), train)
    assert len(calls) == 2 and c.cache_key != a.cache_key


def test_finetune_with_teacher_logits_is_kd():
    from nncompress.train import TrainConfig

    data = _data()
    torch.manual_seed(0)
    m = models.build({"arch": "mlp", "in_dim": 40, "hidden": [8], "num_classes": 4})
    with pytest.raises(ValueError, match="teacher_logits has 3 rows"):
        pl.finetune(copy.deepcopy(m), data, TrainConfig(epochs=1, batch_size=16), teacher_logits=torch.zeros(3, 4))
    # alpha=1 and teacher logits all equal: the target is the uniform distribution, labels are ignored
    out = pl.finetune(copy.deepcopy(m), data, TrainConfig(epochs=40, batch_size=64, lr=0.05),
                      teacher_logits=torch.zeros(len(data), 4), alpha=1.0, temperature=1.0, device="cpu")
    p = out(data.x).softmax(1)
    assert torch.allclose(p, torch.full_like(p, 0.25), atol=0.05)


def test_deep_compress_keeps_sparsity_and_bits():
    from nncompress.train import TrainConfig

    data = _data()
    torch.manual_seed(0)
    m = models.build({"arch": "conv1d", "widths": [8, 8], "num_classes": 4})
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-3)
    shared = pl.deep_compress(m, data, sparsity=0.75, bits=3, retrain_config=cfg, finetune_config=cfg, device="cpu")
    dense = q.dense_state_dict(shared)
    for name, count in q.distinct_values(shared).items():
        assert count <= 2 ** 3 - 1
    for name in q.shared_layers(shared):
        w = dense[f"{name}.weight"]
        assert (w == 0).double().mean() >= 0.74
    with pytest.raises(ValueError, match="sparsity=1.0"):
        pl.deep_compress(m, data, sparsity=1.0, bits=3, retrain_config=cfg, finetune_config=cfg)


def test_file_bytes_formats():
    torch.manual_seed(0)
    m = models.build({"arch": "conv1d", "widths": [32, 32, 32], "num_classes": 10})
    float_bytes = pl.file_bytes(m)
    assert abs(float_bytes - metrics.model_bytes(m)) < 200   # same archive, other record names
    n = metrics.count_params(m)
    assert 4 * n < float_bytes < 4 * n + 4000          # float32 weights plus torch.save's framing
    shared = q.share_weights(prune.remove_masks(prune.prune_to_sparsity(copy.deepcopy(m), 0.9, scope="layer")), 4)
    assert pl.file_bytes(shared, "huffman", bits=4, index_bits=5) < float_bytes / 8
    i8 = q.int8_static(m, torch.randn(64, 40))
    assert pl.file_bytes(i8, "int8") < float_bytes / 2
    with pytest.raises(ValueError, match="fmt='zip'.*float32, pruned, huffman, int8"):
        pl.file_bytes(m, "zip")


def test_measure_row():
    torch.manual_seed(0)
    data = _data(32)
    a = models.build({"arch": "conv1d", "widths": [48, 48], "num_classes": 4}).eval()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.head.bias.add_(torch.tensor([5.0, 0, 0, 0]))           # b predicts class 0 everywhere
    row = pl.measure("ab", [a, b], data, val=_data(16, 3), steps=["x", "y"], latency_batch=8, timing=FAST)
    acc_a = (a(data.x).argmax(1) == data.y).double().mean().item() * 100
    acc_b = (data.y == 0).double().mean().item() * 100
    assert math.isclose(row["acc"], (acc_a + acc_b) / 2, abs_tol=1e-6)
    assert math.isclose(row["acc_std"], abs(acc_a - acc_b) / math.sqrt(2), abs_tol=1e-6)
    assert row["params"] == metrics.count_params(a) and row["flops"] == metrics.count_flops(a, (40,))
    assert row["steps"] == "x → y" and row["seeds"] == 2 and row["latency_ms"] > 0
    assert row["latency_ms_low"] <= row["latency_ms"] <= row["latency_ms_high"]
    val = _data(16, 3)
    val_a = (a(val.x).argmax(1) == val.y).double().mean().item() * 100
    assert math.isclose(row["val_acc"], (val_a + (val.y == 0).double().mean().item() * 100) / 2, abs_tol=1e-6)
    i8 = q.int8_static(a, data.x)
    row8 = pl.measure("int8", [i8], data, fmt="int8", reference=a, latency_batch=8, timing=FAST)
    assert row8["params"] == metrics.count_params(a) and row8["flops"] == metrics.count_flops(a, (40,))
    assert row8["bytes"] < row["bytes"]             # int8 weights (tiny models can be larger: scales, framing)
    with pytest.raises(ValueError, match="models is empty"):
        pl.measure("none", [], data)


def test_measure_with_custom_predict_and_flops():
    data = _data(16)
    m = models.build({"arch": "conv1d", "widths": [4], "num_classes": 4}).eval()
    row = pl.measure("const", [m], data, predict=lambda x: torch.zeros(len(x), dtype=torch.long),
                     run=lambda x: None, flops=123.0, latency_batch=4, timing=FAST)
    assert math.isclose(row["acc"], 100 * (data.y == 0).double().mean().item())
    assert row["flops"] == 123.0


def test_redesign_configs_build():
    from nncompress.data import Splits

    splits = Splits("unit", _data(8), _data(8, 1), _data(8, 2), classes=list("abcd"))
    sep = models.for_data(pl.redesign_config("conv1d-64-sep"), splits)
    assert isinstance(sep, models.Conv1DNet) and sep.separable
    design = models.for_data(pl.redesign_config("design-separable"), splits)
    assert isinstance(design, models.DesignNet) and design.head.out_features == 4
    with pytest.raises(ValueError, match="redesign='mobile'.*conv1d-64-sep"):
        pl.redesign_config("mobile")


def test_frontier_plot_draws_every_model():
    import matplotlib

    matplotlib.use("Agg")
    ax = plots.frontier(ROWS, "bytes", front=pl.pareto_front(ROWS, "bytes"), reference="A", budget=150)
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["A", "B", "C", "D", "E"]
    assert ax.get_xscale() == "log"


def test_cheapest_within_accuracy():
    assert pl.cheapest_within(ROWS, "bytes", 55.0)["model"] == "B"
    assert pl.cheapest_within(ROWS, "latency_ms", 65.0)["model"] == "E"
    assert pl.cheapest_within(ROWS, "bytes", 40.0)["model"] == "A"      # A beats D on the tie in bytes
    assert pl.cheapest_within(ROWS, "bytes", 71.0) is None


class FakeModels:
    """A fake clock and fake models: calling model ``name`` advances the clock by its true
    latency times a random factor in [1 - jitter, 1 + jitter] (the machine's noise)."""

    def __init__(self, true_ms, jitter, seed):
        self.true_ms, self.jitter = true_ms, jitter
        self.rng = torch.Generator().manual_seed(seed)
        self.now = 0.0

    def clock(self):
        return self.now

    def model(self, name):
        def run(x):
            noise = 1 + self.jitter * (2 * torch.rand(1, generator=self.rng).item() - 1)
            self.now += self.true_ms[name] * 1e-3 * noise
        return run


TIES = {"A": (90.0, 1.000), "B": (89.0, 1.002),   # B: less accurate, latency within the noise of A
        "C": (80.0, 0.500), "D": (70.0, 0.501)}    # D: less accurate than C, tied with it


def _tie_ledger(seed):
    fake = FakeModels({k: ms for k, (_, ms) in TIES.items()}, jitter=0.05, seed=seed)
    data = _data(8)
    m = models.build({"arch": "conv1d", "widths": [2], "num_classes": 4}).eval()
    rows = []
    for name, (acc, _) in TIES.items():
        row = pl.measure(name, [m], data, run=fake.model(name), latency_batch=1,
                         timing={"blocks": 15, "block_seconds": 0.005, "timer": fake.clock})
        rows.append({**row, "acc": acc})
    return rows


def test_pareto_front_treats_latency_ties_as_ties():
    """Three "runs" of a small ledger with a noisy fake clock: the front by intervals is the
    same every time (B ties A and is less accurate, D ties C), while the front by medians
    alone depends on the noise."""
    fronts, naive = [], []
    for seed in (0, 1, 2, 3, 4, 5):
        rows = _tie_ledger(seed)
        assert rows[0]["latency_ms_low"] < rows[0]["latency_ms_high"]      # the jitter is measured
        fronts.append(pl.pareto_front(rows, "latency_ms"))
        medians_only = [{k: r[k] for k in ("model", "acc", "latency_ms")} for r in rows]
        naive.append(tuple(pl.pareto_front(medians_only, "latency_ms")))
    assert all(f == ["C", "A"] for f in fronts), fronts
    assert len(set(naive)) > 1, naive          # without intervals the noise reorders A and B


def test_pareto_front_intervals_by_hand():
    rows = [{"model": "fast", "acc": 50.0, "t": 1.0, "t_low": 0.9, "t_high": 1.1},
            {"model": "tied", "acc": 60.0, "t": 1.2, "t_low": 1.05, "t_high": 1.3},   # overlaps fast
            {"model": "slow", "acc": 55.0, "t": 2.0, "t_low": 1.9, "t_high": 2.1}]    # dominated by tied
    assert pl.pareto_front(rows, "t") == ["tied"]      # tied with fast and more accurate: fast is dominated
    rows[1]["t_low"] = 1.15                     # no overlap any more: tied is strictly slower
    assert pl.pareto_front(rows, "t") == ["fast", "tied"]
    rows[0]["acc"] = 60.0                       # now fast is as accurate and strictly faster
    assert pl.pareto_front(rows, "t") == ["fast"]
    rows[1]["t_low"] = 1.05                     # overlap again: a tie with equal accuracy keeps both
    assert pl.pareto_front(rows, "t") == ["fast", "tied"]


def test_sparse_kernel_latency_rows():
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    rows = pl.sparse_kernel_latency(w, [0.0, 0.9], batch=2, timing=FAST)
    assert [r["sparsity"] for r in rows] == [0.0, 0.9]
    for r in rows:
        assert r["dense"].median > 0 and r["csr"].median > 0
        assert math.isclose(r["speedup"], r["dense"].median / r["csr"].median)
    with pytest.raises(ValueError, match="2-D"):
        pl.sparse_kernel_latency(torch.zeros(3), [0.5])
    with pytest.raises(ValueError, match="1.5"):
        pl.sparse_kernel_latency(w, [1.5])


def test_ort_columns_of_a_float_and_an_int8_model(tmp_path):
    torch.manual_seed(0)
    data = _data(64)
    m = models.build({"arch": "conv1d", "widths": [8], "num_classes": 4}).eval()
    cols = pl.ort_columns(m, data, data.x[:32], tmp_path / "m", latency_batch=8, timing=FAST)
    assert cols["onnx"] == "exported"
    for engine in pl.ORT_ENGINES:
        assert 0 <= cols[f"{engine}_acc"] <= 100
        assert cols[f"{engine}_ms_low"] <= cols[f"{engine}_ms"] <= cols[f"{engine}_ms_high"]
        lo, mid, hi = (cols[f"{engine}_over_torch{s}"] for s in ("_low", "", "_high"))
        assert 0 < lo <= mid <= hi
    assert math.isclose(cols["ort_fp32_acc"], 100 * pl.accuracy(m, data), abs_tol=1e-9)
    scaled = pl.ort_columns(m, data, data.x[:32], tmp_path / "s", latency_batch=8, timing=FAST, torch_ms=10.0,
                            engines=["ort_fp32"])
    assert scaled["ort_fp32_ms"] == pytest.approx(10.0 * scaled["ort_fp32_over_torch"])
    assert "ort_int8_static_ms" not in scaled
    eager_int8 = q.int8_static(m, data.x)
    cols8 = pl.ort_columns(eager_int8, data, data.x[:32], tmp_path / "q", latency_batch=8, timing=FAST)
    assert set(cols8) == {"onnx"} and cols8["onnx"] != "exported"


def test_time_rows_fills_every_row_from_one_interleaved_measurement():
    data = _data(16)
    small = models.build({"arch": "conv1d", "widths": [4], "num_classes": 4}).eval()
    big = models.build({"arch": "conv1d", "widths": [128, 128, 128], "num_classes": 4}).eval()
    rows = [pl.measure(n, [m], data, latency=False, latency_batch=8) for n, m in (("small", small), ("big", big))]
    assert all("latency_ms" not in r for r in rows)
    lat = pl.time_rows(rows, {"small": small, "big": big}, data.x[:8], timing={"blocks": 7, "block_seconds": 0.002})
    assert set(lat) == {"small", "big"} and all(len(v.times) == 7 for v in lat.values())
    import statistics
    ref = lat["small"]                                                 # the first row is the reference
    assert rows[0]["latency_ms"] == pytest.approx(ref.median)
    assert rows[0]["latency_ms_low"] == pytest.approx(ref.median) == rows[0]["latency_ms_high"]
    per_round = sorted(b / s for b, s in zip(lat["big"].times, ref.times))
    assert rows[1]["latency_ms"] == pytest.approx(ref.median * statistics.median(per_round))
    assert rows[1]["latency_ms_low"] == pytest.approx(ref.median * per_round[0])   # n = 7: the sign-test interval
    assert rows[1]["latency_ms_high"] == pytest.approx(ref.median * per_round[-1])  # is the range
    assert rows[0]["latency_ms_high"] < rows[1]["latency_ms_low"]      # the small model is faster
    with pytest.raises(ValueError, match="reference = 'nope' is not a row"):
        pl.time_rows(rows, {"small": small, "big": big}, data.x[:8], reference="nope")
    with pytest.raises(ValueError, match="no callable to time for rows \\['big'\\]"):
        pl.time_rows(rows, {"small": small}, data.x[:8])


class _LoadedMachine:
    """A simulated clock: a job costs ``cost`` seconds times the load, which doubles from ``switch`` on."""

    def __init__(self, switch):
        self.now, self.switch = 0.0, switch

    def __call__(self):
        return self.now

    def job(self, cost):
        def run(x):
            self.now += cost * (2.0 if self.now >= self.switch else 1.0)
        return run


@pytest.mark.parametrize("interleaved", [False, True])
def test_latency_front_is_stable_over_three_runs_only_when_rows_are_timed_together(interleaved):
    # "a" is the most accurate and slowest; "b" 1.5x faster and less accurate: both belong on the front.
    # Timed one after the other, a load change during the ledger makes "b" look as slow as "a" in some runs
    # (and drop off the front); timed in interleaved rounds the front is the same in every run.
    costs, accs = {"a": 3e-3, "b": 2e-3, "c": 4e-3}, {"a": 90.0, "b": 80.0, "c": 70.0}
    fronts = []
    for switch in (0.25, 0.5, 10.0):                     # three runs: the load changes at different moments
        machine = _LoadedMachine(switch)
        timing = {"blocks": 9, "block_seconds": 0.02, "warmup": 1, "timer": machine}
        rows = [{"model": n, "acc": accs[n]} for n in costs]
        if interleaved:
            pl.time_rows(rows, {n: machine.job(c) for n, c in costs.items()}, torch.zeros(1, 1), timing=timing)
        else:
            from nncompress.latency import measure
            for r in rows:
                r.update(pl.latency_columns(measure(machine.job(costs[r["model"]]), torch.zeros(1, 1), **timing)))
        fronts.append(tuple(pl.pareto_front(rows, "latency_ms")))
    if interleaved:
        assert fronts[0] == fronts[1] == fronts[2] == ("b", "a"), fronts
    else:
        assert len(set(fronts)) > 1, fronts              # the failure mode the interleaved timing removes


def test_time_rows_reference_ms_puts_rows_on_an_earlier_scale():
    machine = _LoadedMachine(switch=1e9)
    rows = [{"model": "ref"}, {"model": "half"}]
    pl.time_rows(rows, {"ref": machine.job(2e-3), "half": machine.job(1e-3)}, torch.zeros(1, 1),
                 timing={"blocks": 6, "block_seconds": 0.01, "timer": machine}, reference="ref", reference_ms=10.0)
    assert rows[0]["latency_ms"] == pytest.approx(10.0) and rows[1]["latency_ms"] == pytest.approx(5.0)
