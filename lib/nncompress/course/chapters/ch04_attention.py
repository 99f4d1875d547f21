"""Chapter 04 - attention transfer (Zagoruyko & Komodakis 2017): parameters.

CPU preset: chapter 01's protocol unchanged (:func:`~nncompress.course.chapters.common.kd_specs`:
MNIST-1D, the conv1d-64 teacher ``"ch01-teacher"``, a conv1d-16 student on ``n_labelled`` = 500
labels, 100 student epochs, 5 seeds), so the scratch and KD students are chapter 01's cache
entries and AT + KD is compared with that KD at equal total training.  AT acts on the three
conv stages, added to KD; ``beta_at`` = 1000 in the reference code's convention (``at_mode =
"mean"``: ``beta * mean((Q_S - Q_T)^2)``, szagoruyko/attention-transfer and RepDistiller).
No hint stage here, so no ``hint_epochs`` (that is chapter 03's and 05's).
GPU preset: the same code with a CIFAR ResNet-32x4 teacher and a ResNet-8x4 student on the
procedural image set, at chapter 01's GPU schedule.
"""
from ..params import Spec
from .common import kd_specs

NOTEBOOK = "04_attention_transfer"
TITLE = "attention transfer"
TOPIC = "activation-based attention maps, both conventions, p = 1/2/4 (Zagoruyko & Komodakis 2017)"

SPECS = {
    **kd_specs(),
    "beta_at": Spec(float, 1000.0, low=0.0, high=1e6,
                    help="AT weight (reference code and RepDistiller: 1000, 'mean' convention)"),
    "at_mode": Spec(str, "mean", choices=("mean", "paper"),
                    help="AT loss convention: 'mean' = beta*mean squared difference (code), 'paper' = beta/2*L2 norm (eq. 2)"),
    "ps": Spec(list, [1.0, 2.0, 4.0], item=float, low=0.5, high=8.0, help="attention exponents p compared"),
}
