"""Chapter 06 - peers and generations: deep mutual learning, born-again networks, teacher
assistants, label refinery: parameters.

CPU preset: MNIST-1D in chapter 01's regime where distillation helps (a conv1d-64 teacher on
all training labels, small conv1d students on ``n_labelled`` = 500 labels, Adam, cosine), cut
to 80 student epochs so that the whole chapter fits the CPU budget.  GPU preset: the same code
on the procedural image set with CIFAR ResNets.
"""
from ..data import DATASETS
from ..models import NAMED
from ..params import Spec, common_specs

NOTEBOOK = "06_peers_and_generations"

MODEL_NAMES = tuple(NAMED)

SPECS = {
    **common_specs(),
    "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "shapes"}, choices=DATASETS, help="dataset"),
    "n_train": Spec(int, presets={"cpu": 5000, "gpu": 50000}, low=100, help="training-set size (teacher sees all)"),
    "n_test": Spec(int, presets={"cpu": 1000, "gpu": 10000}, low=100, help="test-set size"),
    "n_val": Spec(int, presets={"cpu": 200, "gpu": 5000}, low=50, help="validation samples held out of training"),
    "n_labelled": Spec(int, presets={"cpu": 500, "gpu": 5000}, low=10, help="labelled examples the students see"),
    "teacher": Spec(str, presets={"cpu": "conv1d-64", "gpu": "resnet32x4"}, choices=MODEL_NAMES, help="teacher model"),
    "peer": Spec(str, presets={"cpu": "conv1d-16", "gpu": "resnet8x4"}, choices=MODEL_NAMES,
                 help="model of the DML peers, born-again generations and refinery rounds"),
    "student": Spec(str, presets={"cpu": "conv1d-8", "gpu": "resnet8"}, choices=MODEL_NAMES,
                    help="the small student of the teacher-assistant experiment"),
    "assistants": Spec(list, presets={"cpu": ["conv1d-32"], "gpu": ["resnet20", "resnet14"]}, item=str,
                       choices=MODEL_NAMES, help="teacher-assistant sizes swept (each: teacher -> TA -> student)"),
    "teacher_epochs": Spec(int, presets={"cpu": 15, "gpu": 240}, low=1, help="teacher training epochs"),
    "student_epochs": Spec(int, presets={"cpu": 80, "gpu": 240}, low=1, help="epochs of every other model"),
    "batch_size": Spec(int, presets={"cpu": 100, "gpu": 128}, low=1, help="mini-batch size"),
    "lr": Spec(float, presets={"cpu": 2e-2, "gpu": 0.05}, low=1e-6, high=10.0, help="student learning rate"),
    "teacher_lr": Spec(float, presets={"cpu": 3e-3, "gpu": 0.05}, low=1e-6, high=10.0, help="teacher learning rate"),
    "optimizer": Spec(str, presets={"cpu": "adam", "gpu": "sgd"}, choices=("adam", "sgd", "adamw"), help="optimizer"),
    "weight_decay": Spec(float, presets={"cpu": 0.0, "gpu": 5e-4}, low=0.0, high=1.0, help="weight decay"),
    "schedule": Spec(str, presets={"cpu": "cosine", "gpu": "step"}, choices=("constant", "cosine", "step"),
                     help="LR schedule"),
    "temperature": Spec(float, 4.0, low=0.05, high=100.0, help="KD temperature (born-again, TA)"),
    "alpha": Spec(float, 0.9, low=0.0, high=1.0, help="weight of the soft term (born-again, TA)"),
    "generations": Spec(int, presets={"cpu": 1, "gpu": 3}, low=1, high=10,
                        help="born-again generations after generation 0"),
    "refinery_rounds": Spec(int, presets={"cpu": 1, "gpu": 2}, low=1, high=10, help="label-refinery rounds"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=20, help="seeds for mean ± std"),
}
