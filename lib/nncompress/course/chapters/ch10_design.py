"""Chapter 10 - efficient architecture design (MobileNet, ShuffleNet, SqueezeNet): parameters.

CPU preset: the parameter and FLOP arithmetic of the blocks (exact, checked against PyTorch),
a standard CNN against depthwise-separable CNNs widened to the standard one's parameter count
and to its FLOPs, 3 seeds each (paired 95 % t intervals), trained briefly on 1400 procedural
32x32 images (``data="fashion-mnist"``: 1x28x28); the width/resolution-multiplier grid with
the per-layer prediction of the alpha cost curve; FLOPs against measured latency
(:func:`nncompress.latency.model_latency`, median with its 95 % interval) for one design per
block type.  GPU preset: the same at 50 k images and 30 epochs.
"""
from ...data import DATASETS
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "10_efficient_architectures"
TITLE = "efficient architectures"
TOPIC = "depthwise separable, inverted residual, channel shuffle, fire modules; standard vs separable at matched parameters and FLOPs (3 seeds), α/ρ multipliers, FLOPs vs measured latency"

SPECS = {
    **common_specs(),
    "data": Spec(str, "shapes", choices=DATASETS, help="image dataset (3x32x32 or 1x28x28)"),
    "n_train": examples({"cpu": 1400, "gpu": 50000}, "training-set size incl. validation", low=100),
    "n_test": examples({"cpu": 1000, "gpu": 10000}, "test-set size", low=100),
    "n_val": examples({"cpu": 200, "gpu": 5000}, "validation samples held out of training", low=50),
    "widths": Spec(list, presets={"cpu": [8, 16, 32], "gpu": [16, 32, 64]}, item=int, low=1, high=4096,
                   help="stage widths of the standard CNN (the stem has the first stage's width)"),
    "epochs": epochs({"cpu": 4, "gpu": 30}, "training epochs"),
    "batch_size": Spec(int, presets={"cpu": 32, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 1e-2, "gpu": 2e-3}, low=1e-6, high=10.0,
               help="Adam learning rate (cpu: large, for the short schedule)"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 5}, low=2, high=20,
                    help="seeds of the standard vs separable comparisons (paired 95 % t intervals)"),
    "alphas": Spec(list, [0.25, 0.5, 0.75, 1.0], item=float, low=0.05, high=4.0, help="width multipliers"),
    "rhos": Spec(list, [0.5, 0.75, 1.0], item=float, low=0.1, high=4.0, help="resolution multipliers"),
    "latency_blocks": Spec(int, presets={"cpu": 15, "gpu": 30}, low=6,
                           help="timed blocks per design (nc.latency: median and its 95 % interval)"),
    "latency_batch": Spec(int, 1, low=1, high=4096, help="batch size of the latency measurement"),
}
