"""Chapter 00 - setup and tour: parameters."""
from .common import epochs
from ..params import Spec, common_specs

NOTEBOOK = "00_setup_and_tour"
TITLE = "setup and tour"
TOPIC = "environment, offline datasets, the ledger (params, FLOPs, bytes, latency), the checkpoint cache"

SPECS = {
    **common_specs(),
    "n_show": Spec(int, 4, low=1, high=16, help="examples per class in the image grid"),
    "tour_epochs": epochs({"cpu": 10, "gpu": 30}, "epochs for the tour's tiny training run"),
}
