"""Chapter 10 - efficient architecture design (MobileNet, ShuffleNet, SqueezeNet): parameters.

CPU preset: the parameter and FLOP arithmetic of the blocks (exact, checked against PyTorch),
a standard and a depthwise-separable CNN at matched parameter count trained briefly on 2000
procedural 32x32 images, the width/resolution-multiplier grid, and FLOPs against measured
latency for one design per block type.  GPU preset: the same at 50 k images and 30 epochs.
"""
from ...data import DATASETS
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "10_efficient_architectures"
TITLE = "efficient architectures"
TOPIC = "depthwise separable, inverted residual, channel shuffle, fire modules, α/ρ multipliers, FLOPs vs measured latency"

SPECS = {
    **common_specs(),
    "data": Spec(str, "shapes", choices=DATASETS, help="image dataset (3x32x32 or 1x28x28)"),
    "n_train": examples({"cpu": 2000, "gpu": 50000}, "training-set size incl. validation", low=100),
    "n_test": examples({"cpu": 1000, "gpu": 10000}, "test-set size", low=100),
    "n_val": examples({"cpu": 200, "gpu": 5000}, "validation samples held out of training", low=50),
    "widths": Spec(list, [16, 32, 64], item=int, low=1, high=4096, help="stage widths of the standard CNN"),
    "epochs": epochs({"cpu": 4, "gpu": 30}, "training epochs"),
    "batch_size": Spec(int, presets={"cpu": 64, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, 2e-3, low=1e-6, high=10.0, help="Adam learning rate"),
    "n_seeds": Spec(int, presets={"cpu": 1, "gpu": 3}, low=1, high=20, help="seeds for mean ± std"),
    "alphas": Spec(list, [0.25, 0.5, 0.75, 1.0], item=float, low=0.05, high=4.0, help="width multipliers"),
    "rhos": Spec(list, [0.5, 0.75, 1.0], item=float, low=0.1, high=4.0, help="resolution multipliers"),
    "latency_repeats": Spec(int, presets={"cpu": 20, "gpu": 100}, low=3, help="timed forward passes per design"),
    "latency_batch": Spec(int, 1, low=1, high=4096, help="batch size of the latency measurement"),
}
