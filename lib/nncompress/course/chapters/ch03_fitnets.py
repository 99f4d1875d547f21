"""Chapter 03 - FitNets: hints for thin deep nets (Romero et al. 2015): parameters.

CPU preset: chapter 01's protocol unchanged (:func:`~nncompress.course.chapters.common.kd_specs`:
MNIST-1D, the conv1d-64 teacher ``"ch01-teacher"``, a conv1d-16 student on ``n_labelled`` = 500
labels, 100 student epochs), so the scratch and KD students are chapter 01's cache entries.
FitNets (Algorithm 1): stage 1 trains the student up to ``student_layer`` plus a 1x1 conv
regressor on the teacher's ``teacher_layer`` hint for ``hint_epochs``; stage 2 the whole
student with KD (T = 4, alpha = 0.9) for the remaining ``student_epochs - hint_epochs``, so
FitNets and KD get the same total number of epochs.
GPU preset: the same code with a CIFAR ResNet-32x4 teacher and a ResNet-8x4 student on the
procedural image set, at chapter 01's GPU schedule (240 epochs, SGD lr 0.05 decayed x0.1 at
epochs 150/180/210, weight decay 5e-4 - the RepDistiller schedule - on 5000 labels).
``feature_kd_specs()`` is shared by chapters 03-05.
"""
from ..params import Spec
from .common import check_hint_epochs, epochs, kd_specs

NOTEBOOK = "03_fitnets"
TITLE = "FitNets"
TOPIC = "hints, the regressor, two-stage training at equal total epochs (Romero et al. 2015)"


def feature_kd_specs() -> dict:
    """The protocol of chapters 03-05: chapter 01's
    (:func:`~nncompress.course.chapters.common.kd_specs`, nothing overridden: the same teacher,
    student, labelled subset, batch size and student schedule, so "KD" is the same number in
    all four chapters) plus the length of FitNets' hint stage, which counts against
    ``student_epochs`` (check with :func:`~nncompress.course.chapters.common.check_hint_epochs`)."""
    return {
        **kd_specs(),
        "hint_epochs": epochs({"cpu": 20, "gpu": 40},
                              "FitNets stage-1 epochs (stage 2 gets student_epochs - hint_epochs)"),
    }


SPECS = {
    **feature_kd_specs(),
    "student_layer": Spec(str, "stage2", choices=("stem", "stage1", "stage2", "stage3"),
                          help="the student's guided layer"),
    "teacher_layer": Spec(str, "stage2", choices=("stem", "stage1", "stage2", "stage3"),
                          help="the teacher's hint layer"),
}


def check(params) -> str | None:
    return check_hint_epochs(params)
