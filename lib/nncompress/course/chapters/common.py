"""Parameter blocks that several chapters share (one definition each).

``kd_specs()`` is the distillation protocol of chapters 01, 03-05, 06 and 12: data, the
teacher and student, the labelled subset, both training schedules, the KD temperature and
weight.  A chapter overrides single entries (``{**kd_specs(), "student_epochs": ...}``)
and says in its docstring why.  Not a chapter module (no ``NOTEBOOK``): never discovered.

Chapters 01 and 03-05 override nothing of it, so their scratch and KD students are *one*
cache entry each (seed by seed): they train them under the cache name :data:`KD_STUDENT`
with the same training configuration (``TrainConfig(epochs=student_epochs, lr=lr,
batch_size=batch_size, optimizer=optimizer, weight_decay=weight_decay, schedule=schedule,
milestones=(0.625, 0.75, 0.875))``, the teacher ``"ch01-teacher"`` with ``teacher_epochs``,
``teacher_lr`` and the same batch size), and "KD" is the same number in all four chapters.
A feature method is compared with that KD at equal total training: a method with a
separate stage (FitNets' hint stage, ``hint_epochs``) gets ``student_epochs - hint_epochs``
epochs in its last stage (:func:`check_hint_epochs`).
"""
from __future__ import annotations

from ...data import DATASETS
from ...models import NAMED
from ..params import Spec, common_specs

MODEL_NAMES = tuple(NAMED)
OPTIMIZERS = ("adam", "sgd", "adamw")
SCHEDULES = ("constant", "cosine", "step")

#: upper bounds that keep a typo from hanging a run (a training run of 10^9 epochs, a
#: generated dataset of 10^12 samples); the data layer also checks sizes against the dataset
MAX_EPOCHS = 10_000
MAX_EXAMPLES = 10_000_000

#: the cache name of the scratch and KD students of chapters 01 and 03-05 (one entry per
#: seed and method, shared by the four chapters); the teacher's is ``"ch01-teacher"``
KD_STUDENT = "kd-student"


def epochs(presets: dict, help: str, low: int = 1) -> Spec:
    """An epoch count, bounded by :data:`MAX_EPOCHS`."""
    return Spec(int, presets=presets, low=low, high=MAX_EPOCHS, help=help)


def examples(presets: dict, help: str, low: int = 10) -> Spec:
    """A dataset size, bounded by :data:`MAX_EXAMPLES`."""
    return Spec(int, presets=presets, low=low, high=MAX_EXAMPLES, help=help)


def kd_specs() -> dict[str, Spec]:
    """Chapter 01's distillation protocol (the small-labelled-set regime on MNIST-1D)."""
    return {
        **common_specs(),
        "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=DATASETS, help="dataset"),
        "n_train": examples({"cpu": 5000, "gpu": 50000}, "training-set size (teacher sees all)", low=100),
        "n_test": examples({"cpu": 1000, "gpu": 10000}, "test-set size", low=100),
        "n_val": examples({"cpu": 500, "gpu": 5000}, "validation samples held out of training", low=50),
        "n_labelled": examples({"cpu": 500, "gpu": 5000}, "labelled examples the student sees"),
        "teacher": Spec(str, presets={"cpu": "conv1d-64", "gpu": "resnet32x4"}, choices=MODEL_NAMES,
                        help="teacher model"),
        "student": Spec(str, presets={"cpu": "conv1d-16", "gpu": "resnet8x4"}, choices=MODEL_NAMES,
                        help="student model"),
        "teacher_epochs": epochs({"cpu": 30, "gpu": 240}, "teacher training epochs"),
        "student_epochs": epochs({"cpu": 100, "gpu": 240}, "student training epochs (chapters 01, 03-05: the same schedule)"),
        "batch_size": Spec(int, presets={"cpu": 100, "gpu": 128}, low=3, high=65536,
                           help="mini-batch size (teacher and students; RKD needs >= 3)"),
        "lr": Spec(float, presets={"cpu": 2e-2, "gpu": 0.05}, low=1e-6, high=10.0, help="student learning rate"),
        "teacher_lr": Spec(float, presets={"cpu": 3e-3, "gpu": 0.05}, low=1e-6, high=10.0,
                           help="teacher learning rate"),
        "weight_decay": Spec(float, presets={"cpu": 0.0, "gpu": 5e-4}, low=0.0, high=1.0, help="weight decay"),
        "schedule": Spec(str, presets={"cpu": "cosine", "gpu": "step"}, choices=SCHEDULES,
                         help="LR schedule (step: x0.1 at 62.5/75/87.5 % = epochs 150/180/210 of 240)"),
        "optimizer": Spec(str, presets={"cpu": "adam", "gpu": "sgd"}, choices=OPTIMIZERS, help="optimizer"),
        "temperature": Spec(float, 4.0, low=0.05, high=100.0, help="KD temperature T"),
        "alpha": Spec(float, 0.9, low=0.0, high=1.0, help="weight of the soft (KD) term"),
        "n_seeds": Spec(int, presets={"cpu": 5, "gpu": 3}, low=1, high=20,
                        help="seeds of the headline comparisons (paired 95 % t intervals)"),
    }


def check_hint_epochs(params) -> str | None:
    """An error unless a separate first stage (``hint_epochs``) leaves the last stage at least
    one of the ``student_epochs`` (equal total training: the first stage counts)."""
    if params.hint_epochs >= params.student_epochs:
        return (f"parameter hint_epochs = {params.hint_epochs!r} is not allowed with student_epochs = "
                f"{params.student_epochs!r}: the hint stage counts against the student's epochs, so "
                f"expected an integer in [1, {params.student_epochs - 1}]")
    return None


def num_classes(data: str) -> int:
    """Classes of a dataset by name (the checks run before any data is loaded)."""
    return 100 if data == "cifar100" else 10


def check_class_index(params, name: str) -> str | None:
    """An error if ``params[name]`` is not a class of ``params.data``."""
    k = num_classes(params.data)
    if not 0 <= params[name] < k:
        return (f"parameter {name!r} = {params[name]!r} is out of range: data={params.data!r} has "
                f"{k} classes, so expected an integer in [0, {k - 1}]")
    return None
