"""Chapter 00 - setup and tour: parameters."""
from ..params import Spec, common_specs

NOTEBOOK = "00_setup_and_tour"

SPECS = {
    **common_specs(),
    "n_show": Spec(int, 4, low=1, high=16, help="examples per class in the image grid"),
    "tour_epochs": Spec(int, presets={"cpu": 10, "gpu": 30}, low=0, help="epochs for the tour's tiny training run"),
}
