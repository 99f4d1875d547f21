"""Chapter 07 - pruning criteria with real speed-ups: parameters.

CPU preset: the procedural ``shapes`` images (1200 training, 500 validation, 500 test images),
a SimpleCNN with widths 24/48/96 trained for 8 epochs, 3 seeds; every criterion prunes the
SAME trained models (paired over seeds); network slimming trains the same architecture with
the L1 penalty on BN gamma and prunes by one global threshold; one-shot vs AGP (5 steps) with
the same fine-tuning budget; sensitivity on the validation split; CPU latency at batch 64 and a
CSR sparse kernel against the dense matmul.
GPU preset: the same code at 20 k images, widths 64/128/256 (depth 2) and full training.
"""
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "07_pruning_criteria"
TITLE = "pruning criteria"
TOPIC = ("weight vs filter pruning, L1/L2/FPGM/BN-γ/APoZ/Taylor, network slimming (global γ threshold), "
         "one-shot vs iterative (AGP), sensitivity, masked vs removed channels vs CSR kernels: measured latency")

IMAGE_DATA = ("shapes", "digits", "mnist", "fashion-mnist", "cifar10")
CRITERIA = ("l1", "l2", "fpgm", "bn_gamma", "apoz", "taylor", "random")

SPECS = {
    **common_specs(),
    "data": Spec(str, "shapes", choices=IMAGE_DATA, help="image dataset"),
    "n_train": examples({"cpu": 1200, "gpu": 20000}, "training-set size", low=100),
    "n_val": examples({"cpu": 500, "gpu": 2000}, "validation-set size (sensitivity is chosen on it)", low=100),
    "n_test": examples({"cpu": 500, "gpu": 2000}, "test-set size", low=100),
    "widths": Spec(list, presets={"cpu": [24, 48, 96], "gpu": [64, 128, 256]}, item=int, low=2, high=2048,
                   help="SimpleCNN widths per stage"),
    "depth": Spec(int, presets={"cpu": 1, "gpu": 2}, low=1, high=8, help="conv layers per stage"),
    "epochs": epochs({"cpu": 8, "gpu": 60}, "training epochs of the dense and the slimming models"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 5}, low=1, high=10, help="seeds (dense models) for paired CIs"),
    "slimming_lambda": Spec(float, presets={"cpu": 1e-3, "gpu": 1e-4}, low=0.0, high=1.0,
                            help="L1 penalty on BN gamma (Liu et al. 2017 use 1e-4 for VGGNet over 160 epochs; cpu: 1e-3 for 8)"),
    "finetune_epochs": epochs({"cpu": 5, "gpu": 20}, "fine-tuning budget after pruning (= AGP steps, one epoch each)",
                              low=5),
    "batch_size": Spec(int, presets={"cpu": 64, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 3e-3, "gpu": 1e-3}, low=1e-6, high=10.0, help="Adam learning rate"),
    "criteria": Spec(list, list(CRITERIA), item=str, choices=CRITERIA, help="structured criteria to compare"),
    "channel_ratios": Spec(list, [0.3, 0.5, 0.7], item=float, low=0.0, high=0.95,
                           help="fractions of channels removed (every layer)"),
    "sparsities": Spec(list, [0.5, 0.8, 0.9, 0.95], item=float, low=0.0, high=0.995,
                       help="unstructured sparsities"),
    "target_sparsity": Spec(float, 0.9, low=0.0, high=0.995, help="sparsity of the one-shot vs iterative comparison"),
    "channel_ratio": Spec(float, 0.5, low=0.05, high=0.95, help="channels removed in the latency table"),
    "latency_batch": Spec(int, presets={"cpu": 64, "gpu": 256}, low=1, help="batch size for latency"),
    "csr_sparsities": Spec(list, [0.5, 0.9, 0.99], item=float, low=0.0, high=0.999,
                           help="sparsities of the CSR sparse-kernel vs dense matmul timing"),
    "csr_size": Spec(int, 1024, low=16, high=8192, help="rows = columns of the weight matrix in the CSR timing"),
}
