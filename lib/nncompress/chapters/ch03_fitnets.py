"""Chapter 03 - FitNets: hints for thin deep nets (Romero et al. 2015): parameters.

CPU preset: MNIST-1D, the conv1d-64 teacher of chapter 01 (same config, so the same cache
entry), a conv1d-16 student that sees ``n_labelled`` = 500 labels; stage 1 trains the
student up to ``student_layer`` plus a 1x1 conv regressor on the teacher's
``teacher_layer`` hint, stage 2 the whole student with KD (T = 4, alpha = 0.9).
GPU preset: the RepDistiller CIFAR-100 setting (ResNet-32x4 -> ResNet-8x4, 240 epochs,
SGD lr 0.05 decayed x0.1 at epochs 150/180/210, weight decay 5e-4, batch 64) on the
procedural image set.  ``feature_kd_specs()`` is shared by chapters 03-05, so the three
chapters train identical (hence cached once) scratch / KD / FitNet students.
"""
from ..data import DATASETS
from ..models import NAMED
from ..params import Spec, common_specs

NOTEBOOK = "03_fitnets"

MODEL_NAMES = tuple(NAMED)


def feature_kd_specs() -> dict:
    """The data, models and training schedule chapters 03-05 share."""
    return {
        **common_specs(),
        "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=DATASETS, help="dataset"),
        "n_train": Spec(int, presets={"cpu": 5000, "gpu": 50000}, low=100, help="training-set size (teacher sees all)"),
        "n_test": Spec(int, presets={"cpu": 1000, "gpu": 10000}, low=100, help="test-set size"),
        "n_val": Spec(int, presets={"cpu": 500, "gpu": 5000}, low=50, help="validation samples held out of training"),
        "n_labelled": Spec(int, presets={"cpu": 500, "gpu": 45000}, low=10, help="labelled examples the student sees"),
        "teacher": Spec(str, presets={"cpu": "conv1d-64", "gpu": "resnet32x4"}, choices=MODEL_NAMES,
                        help="teacher model"),
        "student": Spec(str, presets={"cpu": "conv1d-16", "gpu": "resnet8x4"}, choices=MODEL_NAMES,
                        help="student model"),
        "teacher_epochs": Spec(int, presets={"cpu": 30, "gpu": 240}, low=1, help="teacher training epochs"),
        "student_epochs": Spec(int, presets={"cpu": 100, "gpu": 240}, low=1, help="student training epochs"),
        "hint_epochs": Spec(int, presets={"cpu": 20, "gpu": 40}, low=1, help="FitNets stage-1 epochs"),
        "batch_size": Spec(int, presets={"cpu": 100, "gpu": 64}, low=3, help="mini-batch size (RKD needs >= 3)"),
        "lr": Spec(float, presets={"cpu": 2e-2, "gpu": 0.05}, low=1e-6, high=10.0, help="student learning rate"),
        "teacher_lr": Spec(float, presets={"cpu": 3e-3, "gpu": 0.05}, low=1e-6, high=10.0,
                           help="teacher learning rate"),
        "weight_decay": Spec(float, presets={"cpu": 0.0, "gpu": 5e-4}, low=0.0, high=1.0, help="weight decay"),
        "schedule": Spec(str, presets={"cpu": "cosine", "gpu": "step"}, choices=("constant", "cosine", "step"),
                         help="LR schedule (step: x0.1 at 62.5/75/87.5 % = epochs 150/180/210 of 240)"),
        "optimizer": Spec(str, presets={"cpu": "adam", "gpu": "sgd"}, choices=("adam", "sgd", "adamw"),
                          help="optimizer"),
        "temperature": Spec(float, 4.0, low=0.05, high=100.0, help="KD temperature T"),
        "alpha": Spec(float, 0.9, low=0.0, high=1.0, help="weight of the soft (KD) term"),
        "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=20, help="seeds for mean ± std"),
    }


SPECS = {
    **feature_kd_specs(),
    "student_layer": Spec(str, "stage2", choices=("stem", "stage1", "stage2", "stage3"),
                          help="the student's guided layer"),
    "teacher_layer": Spec(str, "stage2", choices=("stem", "stage1", "stage2", "stage3"),
                          help="the teacher's hint layer"),
}
