"""Trains a small MLP with nncompress.train.fit; run under torchrun or plain python.

Usage: ddp_train_script.py OUT.pt  — rank 0 saves the final parameters and the history.
"""
import sys

import torch

from nncompress import models, train
from nncompress.data import DeviceData


def blobs(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    return DeviceData(centers[y] + 0.7 * torch.randn(n, 2, generator=g), y)


if __name__ == "__main__":
    torch.set_num_threads(1)
    data = blobs()
    torch.manual_seed(0)
    model = models.MLP(2, [32, 32], 3)
    hist = train.fit(model, data, dict(epochs=4, batch_size=64, lr=1e-2, optimizer="sgd", momentum=0.9),
                     device="cpu", seed=3, progress=False)
    rank, world = train.distributed()
    if rank == 0:
        torch.save({"params": [p.detach().clone() for p in model.parameters()],
                    "loss": hist.train_loss, "world": world}, sys.argv[1])
    train.barrier()
