"""Chapter 04 - attention transfer (Zagoruyko & Komodakis 2017): parameters.

CPU preset: MNIST-1D, the conv1d-64 teacher of chapter 01, a conv1d-16 student with
``n_labelled`` = 500 labels (the data, models and schedule of chapters 03-05, see
:func:`~nncompress.course.chapters.ch03_fitnets.feature_kd_specs`); AT on the three conv stages,
added to KD.  GPU preset: the RepDistiller CIFAR-100 setting (ResNet-32x4 -> ResNet-8x4).
"""
from ..params import Spec
from .ch03_fitnets import feature_kd_specs

NOTEBOOK = "04_attention_transfer"
TITLE = "attention transfer"
TOPIC = "activation-based attention maps, both conventions, p = 1/2/4 (Zagoruyko & Komodakis 2017)"

SPECS = {
    **feature_kd_specs(),
    "beta_at": Spec(float, 1000.0, low=0.0, high=1e6, help="AT weight (RepDistiller: 1000, 'mean' convention)"),
    "at_mode": Spec(str, "mean", choices=("mean", "paper"), help="AT loss convention (see nc.distill.at_loss)"),
    "ps": Spec(list, [1.0, 2.0, 4.0], item=float, low=0.5, high=8.0, help="attention exponents p compared"),
}
