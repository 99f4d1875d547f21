"""Training and evaluation: ``fit``, ``evaluate``, ``predict``, devices, seeds, history.

``fit`` is the one training loop of the course.  What it optimises is pluggable: an
*objective* is any callable ``objective(model, batch) -> (loss, logits)`` where
``batch`` is the tuple ``(x, y, *extras)`` a dataset yields.  Cross-entropy is the
default; every distillation method in :mod:`nncompress.distill` is an objective.

Data can be a :class:`~nncompress.data.DeviceData` (the fast, device-resident path)
or any ``torch.utils.data.DataLoader`` yielding ``(x, y, ...)``.

:func:`get_or_train` wraps ``fit`` with the content-addressed cache of
:mod:`nncompress.cache`: the key covers the model config, the data, the training
config, the objective's config and the seed, so a trained teacher is reused across
notebooks and reruns.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

Objective = Callable[[nn.Module, tuple], tuple[torch.Tensor, torch.Tensor]]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; anything else is checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device not in ("cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
        raise ValueError(f"device={device!r} is not allowed: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here; use device='auto'")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device='mps' was asked for but MPS is not available here; use device='auto'")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator seeded with ``seed`` for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def progress_enabled(progress: bool | None) -> bool:
    """Progress bars on unless ``progress=False`` or ``NNCOMPRESS_PROGRESS=0``."""
    if progress is not None:
        return progress
    return os.environ.get("NNCOMPRESS_PROGRESS", "1") not in ("0", "false", "no")


def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group when launched by ``torchrun``.

    ``torchrun --nproc_per_node N script.py`` sets ``WORLD_SIZE``/``RANK``/``MASTER_ADDR``;
    the first call here then creates the default process group (NCCL on CUDA, gloo on
    CPU).  A plain ``python`` run returns ``(0, 1)`` and touches nothing.
    """
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    """True on rank 0 (or without torchrun): the process that prints, plots and writes files."""
    return distributed()[0] == 0


def barrier() -> None:
    """Wait for every rank (no-op without torchrun)."""
    if distributed()[1] > 1:
        import torch.distributed as dist

        dist.barrier()


@dataclass
class TrainConfig:
    """Everything about *how* a model is trained (part of every cache key)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for "step"
    gamma: float = 0.1
    nesterov: bool = False

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not allowed: expected one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not allowed: expected one of {', '.join(SCHEDULES)}")
        if self.epochs < 0:
            raise ValueError(f"epochs={self.epochs!r} is not allowed: expected an int >= 0")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r} is not allowed: expected an int >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} is not allowed: expected a float > 0")
        self.milestones = tuple(self.milestones)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def coerce(cls, cfg: "TrainConfig | dict | None") -> "TrainConfig":
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training setting(s) {sorted(unknown)}; allowed: "
                             + ", ".join(cls.__dataclass_fields__))
        return cls(**cfg)

    def lr_factor(self, progress: float) -> float:
        """Multiplier of the base LR at ``progress`` in [0, 1] of training."""
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        if self.schedule == "step":
            return self.gamma ** sum(progress >= m for m in self.milestones)
        return 1.0


@dataclass
class History:
    """Per-epoch training record; ``plot()`` draws loss and accuracy curves."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def log(self, **row: float) -> None:
        for k, v in row.items():
            getattr(self, k).append(v)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: list(v) for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def final_val_acc(self) -> float | None:
        return self.val_acc[-1] if self.val_acc else None

    def plot(self, axes=None, label: str | None = None):
        """Loss (left) and accuracy (right) per epoch; returns the axes."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].plot(self.epoch, self.train_loss, label=label)
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("train loss")
        axes[1].plot(self.epoch, self.train_acc, "--", label=f"{label or ''} train".strip())
        if self.val_acc:
            axes[1].plot(self.epoch, self.val_acc, label=f"{label or ''} val".strip())
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("accuracy")
        axes[1].legend(fontsize=8)
        return axes


def cross_entropy_objective(model: nn.Module, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The default objective: CE(model(x), y)."""
    x, y = batch[0], batch[1]
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def _iter_batches(data, batch_size: int, shuffle: bool, generator, device,
                  shard: tuple[int, int] = (0, 1)) -> Iterable[tuple]:
    """Batches on ``device``; with ``shard=(rank, world)`` each rank gets rows ``rank::world``
    of every global batch (all ranks draw the same permutation from the same seed)."""
    rank, world = shard
    if hasattr(data, "batches"):
        if data.device != device:
            data = data.to(device)
        for batch in data.batches(batch_size, shuffle=shuffle, generator=generator):
            yield batch if world == 1 else tuple(t[rank::world] for t in batch)
    else:  # a DataLoader (its own batch size and shuffling; use a DistributedSampler under torchrun)
        for batch in data:
            yield tuple(t.to(device, non_blocking=True) for t in batch)


def _num_batches(data, batch_size: int) -> int:
    return data.num_batches(batch_size) if hasattr(data, "num_batches") else len(data)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def fit(model: nn.Module, train, config: TrainConfig | dict | None = None, *,
        objective: Objective | None = None, val=None, device: str | torch.device = "auto",
        seed: int = 0, extra_modules: Iterable[nn.Module] = (), amp: bool | None = None,
        progress: bool | None = None, desc: str = "train",
        callbacks: Iterable[Callable[[int, nn.Module], None]] = (),
        channels_last: bool = False, compile: bool = False) -> History:
    """Train ``model`` in place and return its :class:`History`.

    ``objective(model, batch) -> (loss, logits)`` defines the loss (default: CE);
    ``extra_modules`` are trained alongside (e.g. a FitNets regressor); ``val`` is
    evaluated after every epoch; ``callbacks(epoch, model)`` run after each epoch
    (e.g. re-applying pruning masks).  AMP (bf16 autocast) is on by default on CUDA.

    Speed options that do not change what is learned (so they are not part of cache keys):
    ``channels_last`` stores 4-D activations NHWC (faster convolutions on GPUs with tensor
    cores); ``compile`` runs the model through ``torch.compile`` (first epoch pays the
    compilation).  ``make bench`` measures them.
    """
    cfg = TrainConfig.coerce(config)
    device = select_device(device)
    # Denormal floats (Adam's second moments of tiny gradients, late in a decayed schedule)
    # make CPU arithmetic 10-100x slower; flushing them to zero during training changes no
    # result that matters.  The processor flag is global, so it is restored afterwards.
    flushed_before = denormals_flushed()
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    try:
        return _fit(model, train, cfg, objective, val, device, seed, extra_modules, amp, progress, desc,
                    callbacks, channels_last, compile)
    finally:
        torch.set_flush_denormal(flushed_before)


def denormals_flushed() -> bool:
    """Whether the processor currently flushes subnormal floats to zero (FTZ/DAZ)."""
    import sys

    return sys.float_info.min * 0.5 == 0.0


def _fit(model, train, cfg, objective, val, device, seed, extra_modules, amp, progress, desc,
         callbacks, channels_last, compile) -> History:
    objective = objective or cross_entropy_objective
    amp = device.type == "cuda" if amp is None else amp
    generator = seed_everything(seed)
    rank, world = distributed()
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    extra_modules = list(extra_modules)
    for m in extra_modules:
        m.to(device)
    params = [p for m in [model, *extra_modules] for p in m.parameters() if p.requires_grad]
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    if world > 1:
        # DistributedDataParallel averages gradients over ranks; each rank sees rows
        # rank::world of the same global batch, so one step equals a single-process step
        # on the global batch (exactly, for models without batch statistics).
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
        extra_modules = [DDP(m) if any(p.requires_grad for p in m.parameters()) else m
                         for m in extra_modules]
        if progress is None:
            progress = rank == 0 and progress_enabled(None)
        else:
            progress = progress and rank == 0
    opt = make_optimizer(params, cfg)
    steps_per_epoch = _num_batches(train, cfg.batch_size)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cfg.lr_factor(step / total))
    hist = History()

    from tqdm.auto import tqdm

    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress_enabled(progress), leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        for m in extra_modules:
            m.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for batch in _iter_batches(train, cfg.batch_size, True, generator, device, (rank, world)):
            if channels_last and batch[0].dim() == 4:
                batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
            with _autocast(device, amp):
                loss, logits = objective(net, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n = len(batch[1])
            loss_sum += loss.detach().float() * n
            if logits is not None:
                correct += (logits.detach().argmax(1) == batch[1]).sum()
            seen += n
        if world > 1:
            import torch.distributed as dist

            totals = torch.stack([loss_sum, correct.to(loss_sum.dtype),
                                  torch.tensor(float(seen), device=device)])
            dist.all_reduce(totals)
            loss_sum, correct, seen = totals[0], totals[1], int(totals[2].item())
        row = dict(epoch=epoch + 1, train_loss=loss_sum.item() / max(seen, 1),
                   train_acc=correct.item() / max(seen, 1), lr=opt.param_groups[0]["lr"])
        if val is not None:
            row["val_acc"] = evaluate(model, val, device=device)["acc"]
        row["seconds"] = time.perf_counter() - t0
        hist.log(**row)
        for cb in callbacks:
            cb(epoch, model)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                        **({"val": f"{row['val_acc']:.3f}"} if "val_acc" in row else {}))
    return hist


@torch.no_grad()
def predict(model: nn.Module, data, *, device: str | torch.device = "auto",
            batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on every sample of ``data`` (in order), on the CPU."""
    device = select_device(device)
    model.to(device).eval()
    outs = [model(b[0]).float().cpu() for b in _iter_batches(data, batch_size, False, None, device)]
    return torch.cat(outs) if outs else torch.empty(0)


def labels_of(data) -> torch.Tensor:
    if hasattr(data, "y"):
        return data.y.cpu()
    return torch.cat([b[1] for b in data]).cpu()


def evaluate(model: nn.Module, data, *, device: str | torch.device = "auto",
             batch_size: int = 1024) -> dict[str, float]:
    """``{"acc": accuracy, "loss": mean cross-entropy}`` of ``model`` on ``data``."""
    logits = predict(model, data, device=device, batch_size=batch_size)
    y = labels_of(data)
    return {"acc": (logits.argmax(1) == y).float().mean().item(),
            "loss": F.cross_entropy(logits, y).item()}


def get_or_train(name: str, model_config: dict, splits, train_config: TrainConfig | dict | None = None,
                 *, seed: int = 0, objective: Objective | None = None,
                 objective_config: dict | None = None, train_data=None, device="auto",
                 progress: bool | None = None, refresh: bool = False, extra_modules=(),
                 ) -> tuple[nn.Module, History, bool]:
    """Train ``models.for_data(model_config, splits)`` once; afterwards load it from the cache.

    Returns ``(model, history, cached)``.  The cache key covers ``name``, the model
    config, ``splits.config()`` (plus ``train_data``'s identity if a subset is used -
    pass it in ``objective_config``), the training config, the seed and
    ``objective_config``; an objective without an ``objective_config`` is refused,
    because the cache could not tell two objectives apart.
    """
    from . import models

    if objective is not None and objective_config is None:
        raise ValueError("get_or_train: pass objective_config describing the objective "
                         "(e.g. {'method': 'kd', 'T': 4, 'alpha': 0.9, 'teacher': key}) so it enters the cache key")
    cfg = TrainConfig.coerce(train_config)
    key_cfg = {"model": model_config, "data": splits.config(), "train": cfg.to_dict(),
               "seed": seed, "objective": objective_config or {"method": "ce"}}
    return train_cached(name, key_cfg, lambda: models.for_data(model_config, splits),
                        train_data if train_data is not None else splits.train, cfg,
                        objective=objective, val=splits.val if len(splits.val) else splits.test,
                        seed=seed, device=device, progress=progress, refresh=refresh,
                        extra_modules=extra_modules)


def train_cached(name: str, key: dict, build: Callable[[], nn.Module], train_data,
                 train_config: TrainConfig | dict | None = None, *, objective: Objective | None = None,
                 val=None, seed: int = 0, device="auto", progress: bool | None = None,
                 refresh: bool = False, extra_modules=()) -> tuple[nn.Module, History, bool]:
    """Train ``build()`` with :func:`fit` once; afterwards load it from the cache.

    ``key`` must describe everything that changes the result (model, data, training
    config, objective, seed): it names the cache entry.  ``build()`` must return the same
    architecture every time (its initial weights come from ``torch.manual_seed(seed)``).
    Returns ``(model, history, cached)``; the model is in eval mode on ``device`` and
    carries its ``cache_key`` (so students can name their teacher in their own keys).
    Under torchrun every rank trains and rank 0 writes the entry.
    """
    from . import cache

    cfg = TrainConfig.coerce(train_config)
    key = {**key, "train": cfg.to_dict(), "seed": seed}

    def compute():
        torch.manual_seed(seed)
        m = build()
        hist = fit(m, train_data, cfg, objective=objective, val=val, device=device, seed=seed,
                   progress=progress, desc=name, extra_modules=extra_modules)
        return {"state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
                "history": hist.to_dict()}

    if distributed()[1] > 1:
        value, cached = _get_or_compute_distributed(name, key, compute, refresh)
    else:
        value, cached = cache.get_or_compute(name, key, compute, refresh=refresh)
    model = build()
    model.load_state_dict(value["state_dict"])
    model.to(select_device(device)).eval()
    model.cache_key = cache.cache_key({"name": name, **key})
    return model, History.from_dict(value["history"]), cached


def _get_or_compute_distributed(name: str, key_cfg: dict, compute, refresh: bool):
    """Under torchrun: rank 0 decides hit or miss for everyone (so all ranks train together
    or all load), every rank trains on a miss, and only rank 0 writes the entry."""
    import torch.distributed as dist

    from . import cache

    value = None if refresh or not is_main_process() else cache.lookup(name, key_cfg)
    hit = [value is not None]
    dist.broadcast_object_list(hit, src=0)
    if hit[0]:
        barrier()
        return (value if is_main_process() else cache.lookup(name, key_cfg)), True
    value = compute()
    if is_main_process():
        cache.store(name, key_cfg, value)
    barrier()
    return value, False
