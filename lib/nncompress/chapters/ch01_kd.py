"""Chapter 01 - knowledge distillation with temperature (Hinton et al. 2015): parameters.

CPU preset: MNIST-1D, a conv1d-64 teacher trained on all 4500 training labels, a
conv1d-16 student (15x fewer parameters) that sees only ``n_labelled`` = 500 of them -
the small-labelled-set regime where soft targets help most (the paper's 3 % experiment).
GPU preset: the same code on the procedural image set at 50 k images with a CIFAR
ResNet-32x4 teacher and a ResNet-8x4 student, at the epochs of full-scale KD runs.
"""
from ..data import DATASETS
from ..models import NAMED
from ..params import Spec, common_specs

NOTEBOOK = "01_knowledge_distillation"

MODEL_NAMES = tuple(NAMED)

SPECS = {
    **common_specs(),
    "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=DATASETS, help="dataset"),
    "n_train": Spec(int, presets={"cpu": 5000, "gpu": 50000}, low=100, help="training-set size (teacher sees all)"),
    "n_test": Spec(int, presets={"cpu": 1000, "gpu": 10000}, low=100, help="test-set size"),
    "n_val": Spec(int, presets={"cpu": 500, "gpu": 5000}, low=50, help="validation samples held out of training"),
    "n_labelled": Spec(int, presets={"cpu": 500, "gpu": 5000}, low=10, help="labelled examples the student sees"),
    "teacher": Spec(str, presets={"cpu": "conv1d-64", "gpu": "resnet32x4"}, choices=MODEL_NAMES, help="teacher model"),
    "student": Spec(str, presets={"cpu": "conv1d-16", "gpu": "resnet8x4"}, choices=MODEL_NAMES, help="student model"),
    "teacher_epochs": Spec(int, presets={"cpu": 30, "gpu": 240}, low=1, help="teacher training epochs"),
    "student_epochs": Spec(int, presets={"cpu": 150, "gpu": 240}, low=1, help="student training epochs"),
    "batch_size": Spec(int, presets={"cpu": 100, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 2e-2, "gpu": 0.05}, low=1e-6, high=10.0, help="student learning rate"),
    "teacher_lr": Spec(float, presets={"cpu": 3e-3, "gpu": 0.05}, low=1e-6, high=10.0, help="teacher learning rate"),
    "weight_decay": Spec(float, presets={"cpu": 0.0, "gpu": 5e-4}, low=0.0, high=1.0, help="weight decay"),
    "schedule": Spec(str, presets={"cpu": "cosine", "gpu": "step"}, choices=("constant", "cosine", "step"),
                     help="LR schedule (step: x0.1 at 62.5/75/87.5 % = epochs 150/180/210 of 240)"),
    "optimizer": Spec(str, presets={"cpu": "adam", "gpu": "sgd"}, choices=("adam", "sgd", "adamw"), help="optimizer"),
    "temperature": Spec(float, 4.0, low=0.05, high=100.0, help="KD temperature T"),
    "alpha": Spec(float, 0.9, low=0.0, high=1.0, help="weight of the soft (KD) term"),
    "temperatures": Spec(list, [1.0, 2.0, 4.0, 8.0, 20.0], item=float, low=0.05, high=100.0, help="T sweep"),
    "alphas": Spec(list, [0.0, 0.5, 0.9, 1.0], item=float, low=0.0, high=1.0, help="alpha sweep"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=20, help="seeds for mean ± std"),
    "missing_class": Spec(int, 3, low=0, high=99, help="class left out of the transfer set"),
}
