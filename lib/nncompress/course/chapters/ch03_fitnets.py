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
from ..params import Spec
from .common import epochs, examples, kd_specs

NOTEBOOK = "03_fitnets"
TITLE = "FitNets"
TOPIC = "hints, the regressor, two-stage training (Romero et al. 2015)"


def feature_kd_specs() -> dict:
    """The data, models and training schedule chapters 03-05 share: chapter 01's protocol
    (:func:`~nncompress.course.chapters.common.kd_specs`: the same teacher, student, labelled
    subset and student schedule, so "KD" is the same number in all four chapters) with FitNets'
    hint stage and RKD's batch of at least 3."""
    return {
        **kd_specs(),
        "n_labelled": examples({"cpu": 500, "gpu": 45000}, "labelled examples the student sees"),
        "hint_epochs": epochs({"cpu": 20, "gpu": 40}, "FitNets stage-1 epochs"),
        "batch_size": Spec(int, presets={"cpu": 100, "gpu": 64}, low=3, high=65536,
                           help="mini-batch size (RKD needs >= 3)"),
    }


SPECS = {
    **feature_kd_specs(),
    "student_layer": Spec(str, "stage2", choices=("stem", "stage1", "stage2", "stage3"),
                          help="the student's guided layer"),
    "teacher_layer": Spec(str, "stage2", choices=("stem", "stage1", "stage2", "stage3"),
                          help="the teacher's hint layer"),
}
