"""``make bench``: the course's benchmark table.

1. **Notebook run times** in the default preset, each notebook executed by the course
   runner with an empty checkpoint cache (cold: everything trained), then again with the
   cache it filled (warm: what a rerun costs).
2. **Training-loop throughput**: :func:`nncompress.train.fit` on device-resident data
   (:class:`~nncompress.data.DeviceData`) against the textbook ``DataLoader`` loop over a
   ``TensorDataset`` - same model, data, batch size and optimizer - in samples/s.
3. **Teacher-output caching for KD**: a KD epoch that runs the teacher on every batch vs
   one that reads the teacher's logits computed once (possible without augmentation).
4. **Deployment latency** (:func:`engine_latency`, :func:`sparsity_latency`): per model, eager
   PyTorch fp32 vs ONNX Runtime fp32 and int8 (ORT dynamic and static), eager ``torch.ao``
   int8 and PT2E int8; one thread vs all; masked (zeros in a dense kernel) vs physically
   pruned (narrower layers) vs a sparse (CSR) kernel.  Every time is
   :func:`nncompress.latency.measure`: median of blocks with a 95 % interval; ratios whose
   intervals overlap are marked as ties.
5. **Frontier stability** (:func:`frontier_stability`): chapter 12 executed three times in a
   row on the cache its first run filled; each run's latency and size fronts (``--frontier-runs``,
   ``--frontier-only``).

Writes ``OUT/bench.json`` and ``OUT/bench.md``; ``--skip-notebooks`` for the loop parts only,
``--deploy-only`` for part 4 only.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


class _AugmentedImages(torch.utils.data.Dataset):
    """The textbook image pipeline: per-sample torchvision transforms (random crop with 4 px
    padding, horizontal flip) - what a CIFAR training script feeds its DataLoader."""

    def __init__(self, x, y):
        from torchvision.transforms import v2

        self.x, self.y = x, y
        self.tf = v2.Compose([v2.RandomCrop(x.shape[-1], padding=4), v2.RandomHorizontalFlip()])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.tf(self.x[i]), self.y[i]


def _plain_loop(model, x, y, batch_size, epochs, lr, augment=False):
    ds = _AugmentedImages(x, y) if augment else torch.utils.data.TensorDataset(x, y)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for xb, yb in dl:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def loop_throughput(*, dataset: str = "mnist1d", arch: str = "conv1d-16", augment: bool = False,
                    n: int = 4000, batch_size: int = 100, epochs: int = 3, repeats: int = 3) -> dict:
    """Samples/s of ``train.fit`` (device-resident, batched augmentation) vs a plain
    DataLoader loop (per-sample transforms when ``augment``) on the same model and data.

    Both loops run ``repeats`` times, interleaved, after one warm-up each; the best
    (least disturbed) run of each counts, so a busy machine distorts the ratio less.
    """
    from .. import data, models, train

    splits = data.load(dataset, seed=0, n_train=n + 500, n_test=200, n_val=0)
    x, y = splits.train.x[:n].cpu(), splits.train.y[:n].cpu()
    cfg = models.named_config(arch)

    def one(name: str, ep: int) -> float:
        torch.manual_seed(0)
        m = models.for_data(cfg, splits)
        t0 = time.perf_counter()
        if name == "dataloader":
            _plain_loop(m, x, y, batch_size, ep, 1e-3, augment)
        else:
            train.fit(m, data.DeviceData(x, y, augment=augment),
                      dict(epochs=ep, batch_size=batch_size, lr=1e-3, schedule="constant"),
                      device="cpu", progress=False)
        return n * ep / (time.perf_counter() - t0)

    names = ("dataloader", "nncompress.fit")
    for name in names:
        one(name, 1)  # warm-up
    res = {name: 0.0 for name in names}
    for _ in range(repeats):
        for name in names:
            res[name] = max(res[name], one(name, epochs))
    return {"dataset": dataset, "arch": arch, "augment": augment, "n": n, "batch_size": batch_size,
            "epochs": epochs, "repeats": repeats, "samples_per_s": res,
            "ratio": res["nncompress.fit"] / res["dataloader"]}


def kd_teacher_cache_speedup(*, n: int = 4000, batch_size: int = 100, epochs: int = 3) -> dict:
    """KD epochs with the teacher run per batch vs teacher logits computed once."""
    from .. import data, distill, models, train

    splits = data.load("mnist1d", seed=0, n_train=n + 500, n_val=0)
    d = data.DeviceData(splits.train.x[:n], splits.train.y[:n])
    teacher = models.for_data(models.named_config("conv1d-64"), splits).eval()
    cfg = dict(epochs=epochs, batch_size=batch_size, lr=1e-3, schedule="constant")
    times = {}
    for mode in ("teacher per batch", "cached logits"):
        torch.manual_seed(0)
        student = models.for_data(models.named_config("conv1d-16"), splits)
        t0 = time.perf_counter()
        if mode == "cached logits":
            dd = d.with_extras(distill.teacher_logits(teacher, d, device="cpu"))
        else:
            dd = d
        train.fit(student, dd, cfg, objective=distill.KDObjective(teacher, 4.0, 0.9), device="cpu",
                  progress=False)
        times[mode] = time.perf_counter() - t0
    return {"seconds": times, "speedup": times["teacher per batch"] / times["cached logits"]}


def speed_options(*, n: int = 2000, epochs: int = 2, device: str = "auto") -> dict:
    """Throughput of ``fit`` with its speed options on this machine's device: default,
    ``channels_last``, AMP off/on (CUDA only) and ``torch.compile`` (first epoch excluded)."""
    from .. import data, models, train

    dev = train.select_device(device)
    splits = data.load("shapes", seed=0, n_train=n, n_test=200, n_val=0, device=dev)
    variants = {"default": {}, "channels_last": {"channels_last": True}, "compile": {"compile": True}}
    if dev.type == "cuda":
        variants["no AMP"] = {"amp": False}
    res = {}
    for name, kw in variants.items():
        torch.manual_seed(0)
        m = models.for_data(models.named_config("cnn-small"), splits)
        hist = train.fit(m, splits.train, dict(epochs=epochs + 1, batch_size=128, schedule="constant"),
                         device=dev, progress=False, **kw)
        res[name] = n * epochs / sum(hist.seconds[1:])  # epoch 1 pays warm-up / compilation
    return {"device": str(dev), "samples_per_s": res,
            "ratio_vs_default": {k: v / res["default"] for k, v in res.items()}}


# --------------------------------------------------------------------------- deployment latency

DEPLOY_BATCH = 64
_TIMING = dict(blocks=10, block_seconds=0.01, warmup=3)


def _deploy_models() -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    """The model kinds of the ledger that build in milliseconds (untrained: latency does not
    depend on the weight values of a dense kernel): ``(name, model, input batch)``."""
    from .. import models

    def build(cfg):
        torch.manual_seed(0)
        return models.build(cfg).eval()

    g = torch.Generator().manual_seed(0)
    mnist = torch.randn(DEPLOY_BATCH, 784, generator=g)
    signal = torch.randn(DEPLOY_BATCH, 40, generator=g)
    images = torch.randn(DEPLOY_BATCH, 3, 32, 32, generator=g)
    return [("MLP LeNet-300-100", build({"arch": "mlp", "in_dim": 784, "hidden": [300, 100], "num_classes": 10}),
             mnist),
            ("SimpleCNN 16-32-64", build({"arch": "cnn", "in_channels": 3, "num_classes": 10,
                                          "widths": [16, 32, 64]}), images),
            ("Conv1DNet 64-64-64 (teacher)", build({"arch": "conv1d", "num_classes": 10, "widths": [64, 64, 64]}),
             signal),
            ("Conv1DNet channel-pruned to 32-16-24", build({"arch": "conv1d", "num_classes": 10,
                                                           "widths": [32, 16, 24]}), signal)]


def _ms(lat) -> dict:
    return {"median": lat.median, "low": lat.low, "high": lat.high, "threads": lat.threads}


def engine_latency(*, threads_all: int | None = None, pt2e: bool = True) -> dict:
    """Per model (batch :data:`DEPLOY_BATCH`): eager fp32, ORT fp32, ORT int8 dynamic and static,
    eager ``torch.ao`` int8 (dynamic for MLPs, static for conv nets), PT2E int8 (reference graph
    and inductor-compiled); eager fp32 and ORT fp32 again with all threads."""
    from .. import deploy, latency, quantize

    threads_all = threads_all or os.cpu_count() or 1
    rows, notes = [], []
    try:
        from ..quantize.pt2e import int8_pt2e
    except ImportError as err:  # pragma: no cover - torchao is pinned
        int8_pt2e, pt2e = None, False
        notes.append(f"PT2E int8 not measured: {err}")
    with tempfile.TemporaryDirectory() as d:
        for name, model, x in _deploy_models():
            t0 = time.perf_counter()
            path = deploy.export_onnx(model, x[:2], Path(d) / "fp32.onnx")
            dyn = deploy.ort_int8_dynamic(path, Path(d) / "dyn.onnx")
            static = deploy.ort_int8_static(path, Path(d) / "static.onnx", x)
            engines = {"torch fp32": model, "ORT fp32": deploy.ort_session(path),
                       "ORT int8 dynamic": deploy.ort_session(dyn), "ORT int8 static": deploy.ort_session(static)}
            is_mlp = type(model).__name__ == "MLP"
            engines["torch.ao int8 " + ("dynamic" if is_mlp else "static")] = (
                quantize.int8_dynamic(model) if is_mlp else quantize.int8_static(model, x))
            if pt2e:
                engines["PT2E int8 (reference)"] = int8_pt2e(model, x)
                engines["PT2E int8 (inductor)"] = int8_pt2e(model, x, compile=True)
            lat = {}
            for engine, run in engines.items():
                lat[engine] = (deploy.ort_latency(run, x, **_TIMING) if engine.startswith("ORT")
                               else latency.measure(run, x, threads=1, **_TIMING))
            if threads_all > 1:
                lat[f"torch fp32 ×{threads_all}"] = latency.measure(model, x, threads=threads_all, **_TIMING)
                lat[f"ORT fp32 ×{threads_all}"] = deploy.ort_latency(deploy.ort_session(path, threads=threads_all),
                                                                     x, **_TIMING)
            rows.append({"model": name, "batch": len(x), "ms": {k: _ms(v) for k, v in lat.items()},
                         "torch_over_ort": lat["torch fp32"].median / lat["ORT fp32"].median,
                         "torch_ort_tie": lat["torch fp32"].ties(lat["ORT fp32"]),
                         "seconds": time.perf_counter() - t0})
    return {"threads_all": threads_all, "rows": rows, "notes": notes}


class _CSRLinear(torch.nn.Module):
    """``nn.Linear`` with its weight as a ``torch.sparse_csr`` tensor (a sparse kernel)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = linear.bias.detach()

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


def _csr_mlp(mlp):
    import copy
    import warnings

    m = copy.deepcopy(mlp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta state", category=UserWarning)
        m.hidden = torch.nn.ModuleList(_CSRLinear(lin) for lin in m.hidden)
        m.head = _CSRLinear(m.head)
    return m


def sparsity_latency(*, sparsities=(0.5, 0.9, 0.99), batches=(1, 64)) -> list[dict]:
    """LeNet-300-100 at each sparsity ``s``: **masked** (``s`` of each layer's weights zeroed by
    magnitude, dense kernel), **physically pruned** (hidden widths × (1 - s): the neurons
    removed, about the same weight count in the first layer), **sparse kernel** (the masked
    weights as CSR); dense as the reference.  One thread, batch 1 and 64."""
    from .. import latency, models, prune

    torch.manual_seed(0)
    dense = models.build({"arch": "mlp", "in_dim": 784, "hidden": [300, 100], "num_classes": 10}).eval()
    rows = []
    for b in batches:
        x = torch.randn(b, 784)
        ref = latency.measure(dense, x, threads=1, **_TIMING)
        rows.append({"batch": b, "sparsity": 0.0, "ms": {"dense": _ms(ref)}})
        for s in sparsities:
            import copy

            masked = prune.remove_masks(prune.prune_to_sparsity(copy.deepcopy(dense), s, scope="layer")).eval()
            torch.manual_seed(0)
            narrow = models.build({"arch": "mlp", "in_dim": 784, "hidden": [max(1, round(300 * (1 - s))),
                                                                             max(1, round(100 * (1 - s)))],
                                   "num_classes": 10}).eval()
            lat = {"masked (dense kernel)": latency.measure(masked, x, threads=1, **_TIMING),
                   "physically pruned": latency.measure(narrow, x, threads=1, **_TIMING),
                   "sparse CSR kernel": latency.measure(_csr_mlp(masked), x, threads=1, **_TIMING)}
            rows.append({"batch": b, "sparsity": s, "ms": {k: _ms(v) for k, v in lat.items()},
                         "speedup_over_dense": {k: ref.median / v.median for k, v in lat.items()},
                         "tie_with_dense": {k: v.ties(ref) for k, v in lat.items()}})
    return rows


def _deploy_markdown(dep: dict, sparse: list[dict]) -> list[str]:
    def cell(v):
        return f"{v['median']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"

    rows = dep["rows"]
    engines = sorted(dict.fromkeys(k for r in rows for k in r["ms"]),  # fp32, ORT, torch.ao, PT2E, then ×N threads
                     key=lambda e: ("×" in e, min(list(r["ms"]).index(e) for r in rows if e in r["ms"])))
    lines = ["## Deployment latency (CPU): eager PyTorch vs ONNX Runtime, int8 engines, threads", "",
             f"ms per batch of {rows[0]['batch'] if rows else DEPLOY_BATCH}: median [95 % interval] of "
             "`nncompress.latency.measure` blocks; one thread unless marked ×N (N intra-op threads). "
             "torch/ORT: eager fp32 time over ORT fp32 time (> 1: ORT faster); *tie* when the intervals overlap. "
             "int8 weights are untrained-model weights: only time is compared here.", "",
             "| engine | " + " | ".join(r["model"] for r in rows) + " |",
             "|---|" + "---:|" * len(rows)]
    for e in engines:
        lines.append(f"| {e} | " + " | ".join(cell(r["ms"][e]) if e in r["ms"] else "n/a" for r in rows) + " |")
    lines.append("| **torch/ORT fp32** | " + " | ".join(
        f"**{r['torch_over_ort']:.2f}x**" + (" (tie)" if r["torch_ort_tie"] else "") for r in rows) + " |")
    for q in ("ORT int8 dynamic", "ORT int8 static"):
        lines.append(f"| ORT fp32 / {q} (> 1: int8 faster) | " + " | ".join(
            f"{r['ms']['ORT fp32']['median'] / r['ms'][q]['median']:.2f}x" for r in rows) + " |")
    n = dep["threads_all"]
    if n > 1:
        for eng in ("torch fp32", "ORT fp32"):
            lines.append(f"| {eng}: speed-up of ×{n} threads over 1 | " + " | ".join(
                f"{r['ms'][eng]['median'] / r['ms'][f'{eng} ×{n}']['median']:.2f}x" for r in rows) + " |")
    lines += ["", *[f"- {note}" for note in dep["notes"]]] if dep["notes"] else [""]
    lines += ["### Masked vs physically pruned vs sparse kernel (LeNet-300-100, 1 thread)", "",
              "Speed-up over the dense model (its time in the first row of each batch); *tie*: the intervals "
              "overlap. Physically pruned: hidden widths × (1 − sparsity).", "",
              "| batch | sparsity | masked (dense kernel) | physically pruned | sparse CSR kernel |",
              "|---:|---:|---:|---:|---:|"]
    for r in sparse:
        if r["sparsity"] == 0:
            lines.append(f"| {r['batch']} | dense | {cell(r['ms']['dense'])} ms | | |")
            continue
        lines.append(f"| {r['batch']} | {r['sparsity']:.0%} | " + " | ".join(
            f"{r['speedup_over_dense'][k]:.2f}x" + (" (tie)" if r["tie_with_dense"][k] else "")
            for k in ("masked (dense kernel)", "physically pruned", "sparse CSR kernel")) + " |")
    lines.append("")
    return lines


def notebook_times(notebooks=None) -> list[dict]:
    """Each notebook cold (empty cache) and warm (the cache it filled)."""
    from .runner import run_notebooks

    rows = []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        old = os.environ.get("NNCOMPRESS_CACHE")
        os.environ["NNCOMPRESS_CACHE"] = cache
        try:
            cold = run_notebooks(notebooks, out=Path(out) / "cold", progress=False)
            warm = run_notebooks(notebooks, out=Path(out) / "warm", progress=False)
        finally:
            if old is None:
                os.environ.pop("NNCOMPRESS_CACHE", None)
            else:
                os.environ["NNCOMPRESS_CACHE"] = old
    for c, w in zip(cold, warm):
        rows.append({"notebook": c.notebook, "status": c.status, "cold_s": round(c.seconds, 1),
                     "warm_s": round(w.seconds, 1), "peak_rss_mb": c.peak_rss_mb})
    return rows


def frontier_stability(runs: int = 3, notebook: str | Path | None = None) -> list[dict]:
    """Chapter 12 executed ``runs`` times in a row (the first fills the cache, the others reuse
    it, so only the measurements differ): each run's latency and size frontiers.  The latency
    front is stable when every run lists the same models (issue 19)."""
    from .layout import repo_root
    from .runner import run_notebooks

    notebook = Path(notebook) if notebook else repo_root() / "notebooks" / "12_compression_pipeline.ipynb"
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(runs):
            (res,) = run_notebooks([notebook], out=Path(out) / f"run{i}", progress=False, quiet=True)
            rows.append({"run": i + 1, "status": res.status, "seconds": round(res.seconds, 1),
                         "front_latency": list(res.records.get("front_latency", [])),
                         "front_bytes": list(res.records.get("front_bytes", []))})
    return rows


def _frontier_markdown(rows: list[dict]) -> list[str]:
    first = rows[0]
    lines = ["## Chapter 12 frontier, run after run", "",
             "The chapter executed again and again with the cache its first run filled: the models are the same, "
             "only the measurements differ. Latencies are per-round ratios to the teacher from interleaved timing "
             "(`nc.pipeline.time_rows`); overlapping intervals are ties.", "",
             "| run | status | s | latency front | same as run 1 | bytes front | same as run 1 |",
             "|---:|---|---:|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['status']} | {r['seconds']} | {' · '.join(r['front_latency'])} | "
                     f"{r['front_latency'] == first['front_latency']} | {' · '.join(r['front_bytes'])} | "
                     f"{r['front_bytes'] == first['front_bytes']} |")
    stable = all(r["front_latency"] == first["front_latency"] for r in rows)
    lines += ["", f"Latency front the same in all {len(rows)} runs: **{stable}**.", ""]
    return lines


def to_markdown(result: dict) -> str:
    lines = [f"# Benchmarks ({result['environment']['platform']}, {result['environment']['cpu_count']} CPUs, "
             f"torch {result['environment']['torch']}, {result['date']})", ""]
    if result.get("notebooks"):
        lines += ["## Notebook run time, default preset", "",
                  "Cold: empty checkpoint cache (everything trained). Warm: the rerun with the cache the cold run "
                  "filled (what an interrupted `make run` costs the second time). Peak RSS: the kernel's resident "
                  "memory, sampled every 0.2 s (goal <= 2 GiB).", "",
                  "| notebook | status | cold (s) | warm rerun (s) | peak RSS (MiB) |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['notebook']} | {r['status']} | {r['cold_s']} | {r['warm_s']} | {r.get('peak_rss_mb')} |"
                  for r in result["notebooks"]]
        lines.append(f"| **total** | | {sum(r['cold_s'] for r in result['notebooks']):.1f} | "
                     f"{sum(r['warm_s'] for r in result['notebooks']):.1f} | |")
        lines.append("")
    if result.get("deploy"):
        lines += _deploy_markdown(result["deploy"], result["sparsity"])
    if result.get("frontier"):
        lines += _frontier_markdown(result["frontier"])
    if not result.get("loops"):
        return "\n".join(lines)
    lines += ["## Training loop throughput (CPU)", "",
              "Same model, data, batch size and optimizer; best of the interleaved repeats.", "",
              "| data | model | augmentation | DataLoader (samples/s) | nncompress.fit (samples/s) | ratio |",
              "|---|---|---|---:|---:|---:|"]
    for lp in result["loops"]:
        sp = lp["samples_per_s"]
        lines.append(f"| {lp['dataset']} ({lp['n']}) | {lp['arch']} | "
                     f"{'crop+flip' if lp['augment'] else 'none'} | {sp['dataloader']:,.0f} | "
                     f"{sp['nncompress.fit']:,.0f} | **{lp['ratio']:.2f}x** |")
    lines.append("")
    if result.get("speed_options"):
        so = result["speed_options"]
        lines += [f"## fit speed options ({so['device']})", "", "| option | samples/s | vs default |",
                  "|---|---:|---:|"]
        lines += [f"| {k} | {v:,.0f} | {so['ratio_vs_default'][k]:.2f}x |" for k, v in so["samples_per_s"].items()]
        lines.append("")
    kd = result["kd_cache"]
    lines += ["## KD with teacher outputs cached", "", "| mode | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in kd["seconds"].items()]
    lines += [f"| **speed-up** | **{kd['speedup']:.2f}x** |", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    from .runner import environment

    ap = argparse.ArgumentParser(prog="python -m nncompress.course.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--skip-notebooks", action="store_true")
    ap.add_argument("--speed-options", action="store_true",
                    help="also measure channels_last / AMP / torch.compile (slow on CPU: compilation)")
    ap.add_argument("--deploy-only", action="store_true",
                    help="only the deployment-latency tables (ONNX Runtime, int8 engines, sparsity, threads)")
    ap.add_argument("--frontier-runs", type=int, default=3,
                    help="executions of chapter 12 for the frontier-stability table (0: skip)")
    ap.add_argument("--frontier-only", action="store_true", help="only the chapter-12 frontier-stability table")
    ap.add_argument("notebooks", nargs="*")
    args = ap.parse_args(argv)
    os.environ.setdefault("NNCOMPRESS_PROGRESS", "0")
    result = {"environment": environment(), "date": time.strftime("%Y-%m-%d")}
    if args.frontier_runs < 0:
        ap.error(f"--frontier-runs {args.frontier_runs} is not allowed: expected 0 or more")
    if args.frontier_only:
        result["frontier"] = frontier_stability(args.frontier_runs or 3)
        return _write(result, Path(args.out))
    t0 = time.perf_counter()
    result["deploy"] = engine_latency()
    result["sparsity"] = sparsity_latency()
    result["deploy_seconds"] = time.perf_counter() - t0
    if not args.deploy_only:
        result["loops"] = [loop_throughput(),
                           loop_throughput(dataset="shapes", arch="cnn-tiny", augment=True, n=2000, epochs=2)]
        result["kd_cache"] = kd_teacher_cache_speedup()
    if args.speed_options and not args.deploy_only:
        result["speed_options"] = speed_options()
    if not args.skip_notebooks and not args.deploy_only:
        result["notebooks"] = notebook_times(args.notebooks or None)
    if args.frontier_runs and not args.deploy_only:
        result["frontier"] = frontier_stability(args.frontier_runs)
    return _write(result, Path(args.out))


def _write(result: dict, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    md = to_markdown(result)
    (out / "bench.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
