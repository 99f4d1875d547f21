"""``make bench``: the course's benchmark table.

1. **Notebook run times** in the default preset, each notebook executed by the course
   runner with an empty checkpoint cache (cold: everything trained), then again with the
   cache it filled (warm: what a rerun costs).
2. **Training-loop throughput**: :func:`nncompress.train.fit` on device-resident data
   (:class:`~nncompress.data.DeviceData`) against the textbook ``DataLoader`` loop over a
   ``TensorDataset`` - same model, data, batch size and optimizer - in samples/s.
3. **Teacher-output caching for KD**: a KD epoch that runs the teacher on every batch vs
   one that reads the teacher's logits computed once (possible without augmentation).

Writes ``OUT/bench.json`` and ``OUT/bench.md``; ``--skip-notebooks`` for the loop parts only.
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
    ap.add_argument("notebooks", nargs="*")
    args = ap.parse_args(argv)
    os.environ.setdefault("NNCOMPRESS_PROGRESS", "0")
    result = {"environment": environment(), "date": time.strftime("%Y-%m-%d")}
    result["loops"] = [loop_throughput(),
                       loop_throughput(dataset="shapes", arch="cnn-tiny", augment=True, n=2000, epochs=2)]
    result["kd_cache"] = kd_teacher_cache_speedup()
    if args.speed_options:
        result["speed_options"] = speed_options()
    if not args.skip_notebooks:
        result["notebooks"] = notebook_times(args.notebooks or None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    md = to_markdown(result)
    (out / "bench.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
