"""Chapter 07 - pruning criteria with real speed-ups: parameters.

CPU preset: the procedural ``shapes`` images (2000 training images), a SimpleCNN with
widths 16/32/64 trained for 8 epochs; every criterion prunes the SAME trained model;
iterative vs one-shot fine-tuning for a few epochs; CPU latency measured at batch 64.
GPU preset: the same code at 20 k images, widths 64/128/256 (depth 2) and full training.
"""
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "07_pruning_criteria"
TITLE = "pruning criteria"
TOPIC = "weight vs filter pruning, L1/L2/FPGM/BN-γ/APoZ, one-shot vs iterative (AGP), sensitivity, masked vs physically removed channels: measured latency"

IMAGE_DATA = ("shapes", "cifar10", "mnist", "fashionmnist")
CRITERIA = ("l1", "l2", "fpgm", "bn_gamma", "apoz", "random")

SPECS = {
    **common_specs(),
    "data": Spec(str, "shapes", choices=IMAGE_DATA, help="image dataset"),
    "n_train": examples({"cpu": 2000, "gpu": 20000}, "training-set size", low=100),
    "n_test": examples({"cpu": 500, "gpu": 2000}, "test-set size", low=100),
    "widths": Spec(list, presets={"cpu": [16, 32, 64], "gpu": [64, 128, 256]}, item=int, low=2, high=2048,
                   help="SimpleCNN widths per stage"),
    "depth": Spec(int, presets={"cpu": 1, "gpu": 2}, low=1, high=8, help="conv layers per stage"),
    "epochs": epochs({"cpu": 8, "gpu": 60}, "training epochs of the dense model"),
    "finetune_epochs": epochs({"cpu": 2, "gpu": 20}, "fine-tuning budget after pruning"),
    "batch_size": Spec(int, presets={"cpu": 64, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 3e-3, "gpu": 1e-3}, low=1e-6, high=10.0, help="Adam learning rate"),
    "criteria": Spec(list, list(CRITERIA), item=str, choices=CRITERIA, help="structured criteria to compare"),
    "channel_ratios": Spec(list, [0.1, 0.3, 0.5, 0.7], item=float, low=0.0, high=0.95,
                           help="fractions of channels removed (every layer)"),
    "sparsities": Spec(list, [0.5, 0.8, 0.9, 0.95], item=float, low=0.0, high=0.995,
                       help="unstructured sparsities"),
    "target_sparsity": Spec(float, 0.9, low=0.0, high=0.995, help="sparsity of the one-shot vs iterative comparison"),
    "channel_ratio": Spec(float, 0.5, low=0.05, high=0.95, help="channels removed in the latency table"),
    "latency_batch": Spec(int, presets={"cpu": 64, "gpu": 256}, low=1, help="batch size for latency"),
    "latency_repeats": Spec(int, presets={"cpu": 20, "gpu": 50}, low=3, help="timed calls per latency measurement"),
}
