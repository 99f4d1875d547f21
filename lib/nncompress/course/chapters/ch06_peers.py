"""Chapter 06 - peers and generations: deep mutual learning, born-again networks, teacher
assistants, label refinery: parameters.

CPU preset: MNIST-1D in chapter 01's regime where distillation helps (a conv1d-64 teacher on
all training labels, small conv1d students on ``n_labelled`` = 500 labels, Adam, cosine), cut
to 80 student epochs so that the whole chapter fits the CPU budget.  GPU preset: the same code
on the procedural image set with CIFAR ResNets.
"""
from ..params import Spec
from .common import MODEL_NAMES, epochs, examples, kd_specs

NOTEBOOK = "06_peers_and_generations"
TITLE = "peers and generations"
TOPIC = "deep mutual learning, born-again networks, teacher assistants, label refinery"

SPECS = {
    **kd_specs(),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=20, help="seeds for mean ± std"),
    "n_val": examples({"cpu": 200, "gpu": 5000}, "validation samples held out of training", low=50),
    "peer": Spec(str, presets={"cpu": "conv1d-16", "gpu": "resnet8x4"}, choices=MODEL_NAMES,
                 help="model of the DML peers, born-again generations and refinery rounds"),
    "student": Spec(str, presets={"cpu": "conv1d-8", "gpu": "resnet8"}, choices=MODEL_NAMES,
                    help="the small student of the teacher-assistant experiment"),
    "assistants": Spec(list, presets={"cpu": ["conv1d-32"], "gpu": ["resnet20", "resnet14"]}, item=str,
                       choices=MODEL_NAMES, help="teacher-assistant sizes swept (each: teacher -> TA -> student)"),
    "teacher_epochs": epochs({"cpu": 15, "gpu": 240}, "teacher training epochs"),
    "student_epochs": epochs({"cpu": 80, "gpu": 240}, "epochs of every other model"),
    "generations": Spec(int, presets={"cpu": 1, "gpu": 3}, low=1, high=10,
                        help="born-again generations after generation 0"),
    "refinery_rounds": Spec(int, presets={"cpu": 1, "gpu": 2}, low=1, high=10, help="label-refinery rounds"),
}
