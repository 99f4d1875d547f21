"""Chapter 05 - relational KD (RKD, SP) and the feature-distillation comparison: parameters.

CPU preset: chapter 01's protocol unchanged (:func:`~nncompress.course.chapters.ch03_fitnets.feature_kd_specs`:
MNIST-1D, the conv1d-64 teacher ``"ch01-teacher"``, a conv1d-16 student on ``n_labelled`` = 500
labels, 100 student epochs, 5 seeds), so the scratch and KD students are chapter 01's cache
entries, the FitNet students chapter 03's (``hint_epochs`` + ``student_epochs - hint_epochs``:
equal total training) and the AT students chapter 04's.  Every feature method adds its loss
to the KD loss of chapter 01 (T = 4, alpha = 0.9); the weights are RepDistiller's
(``scripts/run_cifar_distill.sh``: AT 1000, SP 3000, RKD 1 with its own 25 / 50 inside).
GPU preset: the same code with a CIFAR ResNet-32x4 teacher and a ResNet-8x4 student on the
procedural image set, at chapter 01's GPU schedule (240 epochs, SGD lr 0.05 decayed x0.1 at
epochs 150/180/210, weight decay 5e-4; the published CRD table, Tian et al. 2020, Table 1,
uses that schedule with batch 64 on CIFAR-100).
"""
from ...distill.features import METHODS
from ..params import Spec
from .ch03_fitnets import feature_kd_specs
from .common import check_hint_epochs

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


def check(params) -> str | None:
    return check_hint_epochs(params)
