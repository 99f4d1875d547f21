"""Chapter 01 - knowledge distillation with temperature (Hinton et al. 2015): parameters.

CPU preset: MNIST-1D, a conv1d-64 teacher trained on all 4500 training labels, a
conv1d-16 student (15x fewer parameters) that sees only ``n_labelled`` = 500 of them -
the small-labelled-set regime where soft targets help most (the paper's 3 % experiment,
sec. 6).  The protocol is :func:`~nncompress.course.chapters.common.kd_specs` unchanged, so
the scratch and KD students are the cache entries chapters 03-05 compare against.  The
headline (scratch vs KD) uses ``n_seeds`` seeds; the T and alpha sweeps and the missing-class
experiment use the first ``n_sweep_seeds`` of them (cached runs are shared with the headline).
GPU preset: the same code on the procedural image set at 50 k images with a CIFAR
ResNet-32x4 teacher and a ResNet-8x4 student, at the epochs of full-scale KD runs.
"""
from ..params import Spec
from .common import check_class_index, kd_specs

NOTEBOOK = "01_knowledge_distillation"
TITLE = "knowledge distillation"
TOPIC = "softmax temperature, dark knowledge, KD loss and its T², T/α sweeps, the missing-class experiment (Hinton et al. 2015)"

SPECS = {
    **kd_specs(),
    "n_sweep_seeds": Spec(int, presets={"cpu": 3, "gpu": 2}, low=1, high=20,
                          help="seeds of the T / alpha sweeps and the missing-class runs (the first of the headline seeds; at most n_seeds are used)"),
    "temperatures": Spec(list, [1.0, 4.0, 20.0], item=float, low=0.05, high=100.0, help="T sweep"),
    "alphas": Spec(list, [0.0, 0.9, 1.0], item=float, low=0.0, high=1.0, help="alpha sweep"),
    "missing_class": Spec(int, 3, low=0, high=99, help="class left out of the transfer set"),
}


def check(params) -> str | None:
    return check_class_index(params, "missing_class")
