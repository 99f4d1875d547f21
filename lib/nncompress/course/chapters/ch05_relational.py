"""Chapter 05 - relational KD (RKD, SP) and the feature-distillation comparison: parameters.

CPU preset: MNIST-1D, the conv1d-64 teacher of chapter 01 (same config, so the same cache
entry), a conv1d-16 student that sees ``n_labelled`` = 500 labels; every method adds its
feature loss to the KD loss of chapter 01 (T = 4, alpha = 0.9).
GPU preset: the RepDistiller CIFAR-100 setting of the CRD paper (Tian et al. 2020, Table 1):
ResNet-32x4 -> ResNet-8x4, T = 4, 240 epochs, SGD lr 0.05 decayed x0.1 at epochs
150/180/210, weight decay 5e-4, batch 64 - run on the procedural image set (or
``data="cifar100"`` with ``data_root``).
"""
from ...distill.features import METHODS
from ..params import Spec
from .ch03_fitnets import feature_kd_specs

NOTEBOOK = "05_relational_kd"
TITLE = "relational KD"
TOPIC = "RKD distance/angle (Park et al. 2019), similarity-preserving KD (Tung & Mori 2019), a method comparison table"

SPECS = {
    **feature_kd_specs(),
    "beta_at": Spec(float, 1000.0, low=0.0, high=1e6, help="AT weight (RepDistiller: 1000, 'mean' convention)"),
    "beta_sp": Spec(float, 3000.0, low=0.0, high=1e6, help="SP weight (RepDistiller: 3000)"),
    "beta_rkd": Spec(float, 1.0, low=0.0, high=1e6, help="RKD weight (times w_dist=25, w_angle=50)"),
    "methods": Spec(list, ["ce", "kd", "fitnet", "at", "sp", "rkd"], item=str, choices=METHODS,
                    help="methods in the comparison table"),
}
