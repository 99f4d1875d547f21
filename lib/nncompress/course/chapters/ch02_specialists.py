"""Chapter 02 - generalist + specialist ensembles and soft targets as a regulariser
(Hinton, Vinyals & Dean 2015, sections 5-6): parameters.

CPU preset: MNIST-1D, a conv1d-32 generalist on all training labels, one specialist per group
of confusable classes (found by clustering the covariance of the generalist's predictions),
each initialised from the generalist and fine-tuned for a few epochs (5 seeds), combined
with the generalist at inference (eq. 5, top-2 activation); then the paper's "soft targets on
3 % of the data" experiment (5 seeds).  GPU preset: the procedural image set with a
CIFAR ResNet generalist.
"""
from ...data import DATASETS
from ...models import NAMED
from .common import epochs, examples
from ..params import Spec, common_specs

NOTEBOOK = "02_specialists"
TITLE = "generalist + specialists"
TOPIC = "confusable groups from the generalist, specialists with a dustbin class, KL combination at inference, soft targets as a regulariser (Hinton et al. 2015 §5–6)"

MODEL_NAMES = tuple(NAMED)

SPECS = {
    **common_specs(),
    "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=DATASETS, help="dataset"),
    "n_train": examples({"cpu": 5000, "gpu": 50000}, "training-set size", low=100),
    "n_test": examples({"cpu": 1000, "gpu": 10000}, "test-set size", low=100),
    "n_val": examples({"cpu": 500, "gpu": 5000}, "validation samples (groups are found here)", low=50),
    "generalist": Spec(str, presets={"cpu": "conv1d-32", "gpu": "resnet20"}, choices=MODEL_NAMES,
                       help="generalist model (specialists copy it)"),
    "generalist_epochs": epochs({"cpu": 15, "gpu": 60}, "generalist training epochs"),
    "generalist_lr": Spec(float, presets={"cpu": 3e-3, "gpu": 0.05}, low=1e-6, high=10.0, help="generalist LR"),
    "n_groups": Spec(int, 3, low=1, high=100, help="k of the k-means on the covariance columns"),
    "specialist_epochs": epochs({"cpu": 4, "gpu": 20}, "specialist fine-tuning epochs"),
    "specialist_lr": Spec(float, presets={"cpu": 1e-3, "gpu": 0.01}, low=1e-6, high=10.0, help="specialist LR"),
    "temperature": Spec(float, 2.0, low=0.05, high=100.0, help="temperature of the soft targets"),
    "alpha": Spec(float, 0.5, low=0.0, high=1.0, help="weight of the soft term for soft-target specialists"),
    "top_n": Spec(int, 2, low=1, high=100,
                  help="specialists fire when their group meets the generalist's top-n (paper: 1, with overlapping groups)"),
    "combine_steps": Spec(int, 100, low=0, high=10000, help="gradient steps of the combination (eq. 5)"),
    "small_fraction": Spec(float, presets={"cpu": 0.03, "gpu": 0.03}, low=0.001, high=1.0,
                           help="fraction of the training labels in the regulariser experiment"),
    "small_epochs": epochs({"cpu": 250, "gpu": 300}, "epochs on the small fraction (long enough to converge)"),
    "batch_size": Spec(int, presets={"cpu": 100, "gpu": 128}, low=1, help="mini-batch size"),
    "optimizer": Spec(str, presets={"cpu": "adam", "gpu": "sgd"}, choices=("adam", "sgd", "adamw"), help="optimizer"),
    "n_seeds": Spec(int, presets={"cpu": 5, "gpu": 5}, low=1, high=20,
                    help="seeds of the hard specialists and of the small-data models (paired 95 % intervals)"),
    "n_soft_seeds": Spec(int, presets={"cpu": 3, "gpu": 5}, low=1, high=20,
                         help="seeds of the soft-target specialists (a secondary comparison; the first of the n_seeds seeds)"),
}
