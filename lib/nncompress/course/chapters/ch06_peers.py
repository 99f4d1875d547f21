"""Chapter 06 - peers and generations: deep mutual learning, born-again networks, teacher
assistants, label refinery: parameters.

CPU preset: chapter 01's protocol (:func:`~nncompress.course.chapters.common.kd_specs`: the
same data, splits and ``conv1d-64`` teacher, cache entry ``"ch01-teacher"``, so in course order
the teacher is loaded, not trained), with these overrides and why:

* ``student_epochs`` 50 instead of 100: the chapter trains about 50 small models (5 seeds of
  DML pairs, a born-again generation, a teacher-size sweep, teacher assistants); at 100 epochs
  it would need about twice the 90 s budget (measured: 79 s cold at 50 epochs, chapter 01's
  teacher cached).  Every student of the chapter shares the 50; at 50 epochs the students
  under-fit their 500 labels, and the chapter's claims say so.
* ``peer`` (conv1d-16, chapter 01's student) is the model of the DML peers, born-again
  generations and refinery rounds; ``student`` (conv1d-8) is the small student of the
  capacity-gap experiment, distilled from each size in ``teachers``; ``assistants``
  (conv1d-16 in the cpu preset: between the student and the teacher in parameters, and the
  cheapest) bridge ``teacher`` -> ``student``.
* ``sweep_seeds`` 3: the teacher-size sweep is read at 3 seeds; the headline comparisons
  (DML vs alone, born-again generation vs its teacher, TA vs direct KD) use ``n_seeds`` = 5.
* ``generations`` 1 in the cpu preset (each generation costs 5 trainings).

GPU preset: the same code on the procedural image set with CIFAR ResNets.
"""
from ..params import Spec
from .common import MODEL_NAMES, epochs, kd_specs

NOTEBOOK = "06_peers_and_generations"
TITLE = "peers and generations"
TOPIC = "deep mutual learning, born-again networks, teacher assistants, label refinery"

SPECS = {
    **kd_specs(),
    "student_epochs": epochs({"cpu": 50, "gpu": 240}, "epochs of every model except the teachers"),
    "sweep_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=2, high=20,
                        help="seeds of the teacher-size sweep (the first of the n_seeds)"),
    "peer": Spec(str, presets={"cpu": "conv1d-16", "gpu": "resnet8x4"}, choices=MODEL_NAMES,
                 help="model of the DML peers, born-again generations and refinery rounds"),
    "student": Spec(str, presets={"cpu": "conv1d-8", "gpu": "resnet8"}, choices=MODEL_NAMES,
                    help="the small student of the capacity-gap and teacher-assistant experiments"),
    "teachers": Spec(list, presets={"cpu": ["conv1d-16", "conv1d-32", "conv1d-64"],
                                    "gpu": ["resnet14", "resnet20", "resnet32x4"]}, item=str,
                     choices=MODEL_NAMES,
                     help="teacher sizes of the capacity-gap sweep, smallest first (must include `teacher`)"),
    "assistants": Spec(list, presets={"cpu": ["conv1d-16"], "gpu": ["resnet20", "resnet14"]}, item=str,
                       choices=MODEL_NAMES, help="teacher-assistant sizes (each: teacher -> TA -> student)"),
    "generations": Spec(int, presets={"cpu": 1, "gpu": 3}, low=1, high=10,
                        help="born-again generations after generation 0"),
}


def check(params) -> str | None:
    """The sweep must contain the main teacher (its student is the direct-KD baseline of the
    teacher-assistant comparison).  The sweep uses the first ``sweep_seeds`` of the headline seeds
    (at most ``n_seeds``)."""
    if params.teacher not in params.teachers:
        return (f"parameter teachers = {params.teachers!r} must contain teacher = {params.teacher!r} "
                f"(its student is the direct-KD baseline of the teacher assistant)")
    return None
