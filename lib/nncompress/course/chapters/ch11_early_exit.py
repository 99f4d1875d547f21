"""Chapter 11 - early-exit (multi-exit) networks and dynamic computation: parameters.

CPU preset: MNIST-1D, a 4-stage conv1d backbone (widths 16-32-32-32) with an exit after
every stage, trained jointly (BranchyNet's weighted sum of exit losses), against a small
(first 2 stages) and a large (all 4 stages) single-exit network trained separately with the
same budget.  GPU preset: the same code on 50 k procedural 32x32 images with a 4-stage CNN.
"""
from ...data import DATASETS
from ...early_exit import CRITERIA
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "11_early_exit"
TITLE = "early exit"
TOPIC = "multi-exit networks, confidence thresholds, per-sample FLOPs, overthinking"

SPECS = {
    **common_specs(),
    "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=DATASETS,
                 help="dataset (1-D signals -> conv1d backbone, images -> cnn backbone)"),
    "n_train": examples({"cpu": 3000, "gpu": 50000}, "training-set size incl. validation", low=100),
    "n_test": examples({"cpu": 1000, "gpu": 10000}, "test-set size", low=100),
    "n_val": examples({"cpu": 300, "gpu": 5000}, "validation samples held out of training", low=50),
    "widths": Spec(list, presets={"cpu": [16, 32, 32, 32], "gpu": [64, 128, 256, 256]}, item=int, low=1,
                   high=4096, help="channels of each backbone stage (one exit after each)"),
    "small_stages": Spec(int, 2, low=1, high=16, help="stages of the separately trained small baseline"),
    "epochs": epochs({"cpu": 10, "gpu": 60}, "training epochs (every model)"),
    "batch_size": Spec(int, presets={"cpu": 100, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 3e-3, "gpu": 2e-3}, low=1e-6, high=10.0, help="Adam learning rate"),
    "exit_weighting": Spec(str, "uniform", choices=("uniform", "linear"),
                           help="per-exit loss weights: all 1, or 1, 2, ..., E (later exits weigh more)"),
    "kd_alpha": Spec(float, 0.0, low=0.0, high=1.0, help="self-distillation weight (final exit -> earlier exits)"),
    "kd_temperature": Spec(float, 3.0, low=0.05, high=100.0, help="self-distillation temperature"),
    "criterion": Spec(str, "confidence", choices=CRITERIA,
                      help="exit rule: max softmax >= threshold, or entropy (nats) <= threshold"),
    "threshold": Spec(float, 0.8, low=0.0, high=10.0, help="headline exit threshold"),
    "thresholds": Spec(list, [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.01], item=float,
                       low=0.0, high=10.0, help="threshold sweep (for criterion='entropy': nats)"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=20, help="seeds for mean ± std and paired CIs"),
}
