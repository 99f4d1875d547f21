"""Chapter 09 - Deep Compression (Han, Mao & Dally 2016) and quantization: parameters.

CPU preset: an MLP of LeNet-300-100 shape on the procedural 32x32 image set, flattened (3072
inputs, so the first layer holds 92 % of the weights, like LeNet-300-100's 784-input layer);
``data="fashion-mnist"``: the paper's LeNet-300-100 itself (784 -> 300 -> 100 -> 10) on 28x28 images;
two rounds of magnitude pruning with retraining, 5-bit weight sharing with centroid
fine-tuning, Huffman coding, all measured in bytes of a real file (and set against zlib / lzma on
the same bytes).  Then BinaryConnect (trained for as many epochs as the float model),
int8 dynamic quantization and low-rank factorisation of the same network; int8 *static*
quantization (calibrated, fused conv+bn+relu) and quantization-aware training of a small
SimpleCNN on the same images, beside ONNX Runtime (float32 and int8 static) and PT2E int8.  The MLP
pipeline and the CNN int8 variants run over ``n_seeds`` seeds (3 on the CPU preset, paired 95 % t
intervals); BinaryConnect and low rank use the base seed only.
GPU preset: the same code at 50 k images and longer schedules.
"""
from ...data import DATASETS
from ...models import NAMED
from .common import epochs, examples
from ..params import Spec, common_specs
from ...quantize import BACKENDS, OBSERVERS

NOTEBOOK = "09_deep_compression"
TITLE = "deep compression"
TOPIC = "pruning + k-means weight sharing + Huffman in a real file (LeNet-300-100 shape, against zlib/lzma), BinaryConnect, int8 dynamic, static (calibrated) and quantization-aware training with measured CPU latency per quantized engine, low rank"

CNNS = tuple(name for name, cfg in NAMED.items() if cfg["arch"] == "cnn")  # eager int8 needs no residual adds

SPECS = {
    **common_specs(),
    "data": Spec(str, "shapes", choices=DATASETS, help="dataset (flattened for the MLP)"),
    "n_train": examples({"cpu": 4000, "gpu": 50000}, "training-set size incl. validation", low=100),
    "n_test": examples({"cpu": 1000, "gpu": 10000}, "test-set size", low=100),
    "n_val": examples({"cpu": 400, "gpu": 5000}, "validation samples held out of training", low=50),
    "model": Spec(str, "mlp-300-100", choices=tuple(NAMED), help="model (an MLP: Linear layers only)"),
    "epochs": epochs({"cpu": 8, "gpu": 60}, "training epochs of the dense model"),
    "lr": Spec(float, 1e-3, low=1e-6, high=10.0, help="learning rate (Adam)"),
    "batch_size": Spec(int, 100, low=1, help="mini-batch size"),
    "prune_amounts": Spec(list, [0.95, 0.8, 0.5], item=float, low=0.0, high=0.999,
                          help="fraction of weights pruned per layer (first, ..., head)"),
    "prune_rounds": Spec(int, 2, low=1, high=10, help="prune -> retrain rounds (iterative pruning)"),
    "retrain_epochs": epochs({"cpu": 2, "gpu": 20}, "retraining epochs per pruning round", low=0),
    "retrain_lr": Spec(float, 5e-4, low=1e-7, high=1.0, help="retraining learning rate"),
    "bits": Spec(int, 5, low=2, high=8, help="weight-sharing bits per layer (2**bits - 1 centroids + zero)"),
    "index_bits": Spec(int, 5, low=1, high=16, help="bits of a relative CSR index"),
    "finetune_epochs": epochs({"cpu": 2, "gpu": 10}, "centroid fine-tuning epochs", low=0),
    "finetune_lr": Spec(float, 1e-4, low=1e-7, high=1.0, help="centroid fine-tuning learning rate"),
    "bits_sweep": Spec(list, [2, 3, 4, 5, 6, 8], item=int, low=2, high=8,
                       help="bits for the bits-vs-accuracy plot (>= 2: code 0 is zero, so 1 bit leaves one centroid)"),
    "binary_stochastic": Spec(bool, presets={"cpu": False, "gpu": True}, help="also train stochastic BinaryConnect"),
    "binary_lr": Spec(float, 1e-3, low=1e-6, high=10.0, help="BinaryConnect learning rate"),
    "ranks": Spec(list, [4, 16, 64], item=int, low=1, high=4096, help="ranks K of the first layer"),
    "lowrank_epochs": epochs({"cpu": 1, "gpu": 5}, "fine-tuning epochs after factorising", low=0),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=10,
                    help="seeds for mean ± std (MLP pipeline and CNN int8 variants)"),
    "cnn_model": Spec(str, "cnn-small", choices=CNNS, help="SimpleCNN for int8 static / QAT"),
    "cnn_epochs": epochs({"cpu": 2, "gpu": 30}, "training epochs of the float CNN"),
    "cnn_lr": Spec(float, 3e-3, low=1e-6, high=10.0, help="CNN learning rate (Adam)"),
    "cnn_batch_size": Spec(int, 64, low=1, help="CNN mini-batch size (training and QAT)"),
    "int8_backend": Spec(str, "x86", choices=BACKENDS, help="quantized engine of int8 static / QAT"),
    "int8_observer": Spec(str, "minmax", choices=OBSERVERS, help="activation observer for calibration"),
    "n_calibration": Spec(int, presets={"cpu": 256, "gpu": 1024}, low=1, help="training images for calibration"),
    "qat_epochs": epochs({"cpu": 1, "gpu": 5}, "quantization-aware fine-tuning epochs"),
    "qat_lr": Spec(float, 3e-4, low=1e-7, high=1.0, help="QAT learning rate"),
    "latency_batch": Spec(int, presets={"cpu": 64, "gpu": 64}, low=1, help="batch size of the int8 kernel timing"),
}
