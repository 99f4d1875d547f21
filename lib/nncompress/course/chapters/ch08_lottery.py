"""Chapter 08 - lottery tickets vs rethinking the value of pruning: parameters.

CPU preset: MNIST-1D (4000 training signals), an MLP 40-128-128-10 trained near convergence
(Adam 1e-2, 15 epochs: about 92 % training accuracy), iterative magnitude
pruning (global, 50 % of the surviving weights per level, 3 levels -> 87.5 % sparsity) with
rewinding to epoch 1; controls (random re-init, random mask, sign-preserving re-init), each with
the ticket's total training, and Scratch-E / Scratch-B against fine-tuning for 50 % neuron
pruning; the learning-rate experiment of Liu et al. (2019, sec. 6): ticket vs random re-init
with SGD at a large and a small initial learning rate; 3 seeds.
GPU preset: the same code on the procedural images with a CNN, 20 % per level, 8 levels.
"""
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "08_lottery_tickets"
TITLE = "lottery tickets"
TOPIC = "IMP with rewinding, random re-init / random mask / sign-preserving controls, scratch-E/B (Frankle & Carbin 2019, Liu et al. 2019)"

SPECS = {
    **common_specs(),
    "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=("mnist1d", "shapes", "cifar10"),
                 help="dataset"),
    "n_train": examples({"cpu": 4000, "gpu": 20000}, "training-set size", low=100),
    "n_test": examples({"cpu": 1000, "gpu": 2000}, "test-set size", low=100),
    "hidden": Spec(list, presets={"cpu": [128, 128], "gpu": [32, 64, 128]}, item=int, low=2, high=4096,
                   help="MLP hidden sizes (cpu) / CNN widths (gpu, image data)"),
    "epochs": epochs({"cpu": 15, "gpu": 40}, "training epochs per level", low=2),
    "batch_size": Spec(int, presets={"cpu": 100, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 1e-2, "gpu": 1e-3}, low=1e-6, high=10.0, help="Adam learning rate"),
    "rate": Spec(float, presets={"cpu": 0.5, "gpu": 0.2}, low=0.01, high=0.95,
                 help="fraction of the surviving weights pruned per IMP level"),
    "levels": Spec(int, presets={"cpu": 3, "gpu": 8}, low=1, high=30, help="IMP levels"),
    "rewind_epoch": Spec(int, 1, low=0, high=1000, help="rewind to the weights after this many epochs (0: init)"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 5}, low=1, high=10, help="seeds for mean ± std"),
    "debate_lrs": Spec(list, [0.1, 0.01], item=float, low=1e-5, high=10.0,
                       help="SGD learning rates (large, small) of the ticket-vs-re-init experiment (Liu et al. 2019 sec. 6)"),
    "neuron_ratio": Spec(float, 0.5, low=0.05, high=0.95, help="fraction of neurons/channels removed (rethinking)"),
    "finetune_epochs": epochs({"cpu": 5, "gpu": 20}, "fine-tuning epochs after structured pruning"),
}
