"""Chapter 12 - the compression pipeline: combine methods, map the accuracy/size/latency frontier.

CPU preset: MNIST-1D and chapter 01's conv1d-64 teacher trained at a higher learning rate
(1e-2: 94 % instead of 90 %, so that compression has something to lose).  Every compressed model is fine-tuned
or distilled on the teacher's training set (``n_labelled`` = all 4500 labels; set it to 500
for chapter 01's small-labelled-set regime, where distillation matters most).  Every compressed
model is measured in one ledger: accuracy (mean ± std over seeds where cheap), parameters,
non-zeros, FLOPs, bytes of its real file, CPU latency at batch ``latency_batch``.
GPU preset: the same code on CIFAR-10 (``data_root`` must hold it; nothing is downloaded)
with SimpleCNN teacher/student pairs and a MobileNet-style DesignNet redesign.
"""
from ...data import DATASETS
from ..params import Spec
from .common import MODEL_NAMES, epochs, examples, kd_specs

NOTEBOOK = "12_compression_pipeline"
TITLE = "the compression pipeline"
TOPIC = "single methods and pipelines (prune → distil → int8, redesign → distil → int8, Deep Compression of a distilled student) in one ledger: accuracy ± std, params, non-zeros, FLOPs, bytes of real files, CPU latency; Pareto frontiers; budget search; which methods compose and why order matters"
REDESIGNS = ("conv1d-64-sep", "design-separable")
FINISHES = ("float32", "int8", "huffman")

SPECS = {
    **kd_specs(),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=1, high=20, help="seeds for mean ± std"),
    "data": Spec(str, presets={"cpu": "mnist1d", "gpu": "cifar10"}, choices=DATASETS, help="dataset"),
    "n_labelled": examples({"cpu": 4500, "gpu": 45000},
                           "labelled examples available for compression (default: the whole training set)"),
    "teacher": Spec(str, presets={"cpu": "conv1d-64", "gpu": "cnn-large"}, choices=MODEL_NAMES, help="teacher"),
    "student": Spec(str, presets={"cpu": "conv1d-16", "gpu": "cnn-small"}, choices=MODEL_NAMES,
                    help="small student for KD"),
    "redesign": Spec(str, presets={"cpu": "conv1d-64-sep", "gpu": "design-separable"}, choices=REDESIGNS,
                     help="MobileNet-style redesign of the teacher (depthwise-separable convolutions)"),
    "teacher_epochs": epochs({"cpu": 30, "gpu": 200}, "teacher training epochs"),
    "teacher_lr": Spec(float, presets={"cpu": 1e-2, "gpu": 0.05}, low=1e-6, high=10.0, help="teacher learning rate"),
    "student_epochs": epochs({"cpu": 20, "gpu": 200}, "epochs of models trained from scratch"),
    "finetune_epochs": epochs({"cpu": 12, "gpu": 30}, "fine-tuning epochs after pruning / for centroids"),
    "finetune_lr": Spec(float, presets={"cpu": 1e-2, "gpu": 0.01}, low=1e-7, high=1.0, help="fine-tuning learning rate"),
    "schedule": Spec(str, presets={"cpu": "cosine", "gpu": "cosine"}, choices=("constant", "cosine", "step"),
                     help="LR schedule"),
    "channel_ratio": Spec(float, 0.75, low=0.05, high=0.95, help="fraction of channels removed by structured pruning"),
    "sparsity": Spec(float, 0.8, low=0.0, high=0.995, help="Deep Compression of the teacher: fraction of weights pruned"),
    "student_sparsity": Spec(float, 0.6, low=0.0, high=0.995,
                             help="Deep Compression of small models (student, pruned teacher): fraction pruned"),
    "bits": Spec(int, 5, low=1, high=8, help="Deep Compression: weight-sharing bits per layer"),
    "index_bits": Spec(int, 5, low=1, high=16, help="Deep Compression: bits of a relative CSR index"),
    "exit_widths": Spec(list, presets={"cpu": [16, 32, 32, 32], "gpu": [64, 128, 256, 256]}, item=int, low=1,
                        high=4096, help="early-exit backbone: channels per stage (one exit after each)"),
    "exit_threshold": Spec(float, 0.8, low=0.0, high=1.01, help="early exit: leave when max softmax >= threshold"),
    "order_bits": Spec(list, [2, 3], item=int, low=1, high=8, help="bits of the prune/share order experiment"),
    "order_sparsities": Spec(list, [0.5, 0.7, 0.9], item=float, low=0.0, high=0.995,
                             help="sparsities of the prune/share order experiment"),
    "sweep_ratios": Spec(list, [0.5, 0.75, 0.875], item=float, low=0.05, high=0.95,
                         help="budget search: channel ratios of prune -> KD"),
    "sweep_finishes": Spec(list, list(FINISHES), item=str, choices=FINISHES,
                           help="budget search: last step (keep float32, int8 static, Deep Compression)"),
    "size_budget": Spec(float, 50.0, low=1.0, high=1e6, help="size budget: at least this many times smaller than the teacher"),
    "latency_budget": Spec(float, 3.0, low=1.0, high=1e6, help="latency budget: at least this many times faster"),
    "max_loss_pts": Spec(float, 1.0, low=0.0, high=100.0, help="accuracy loss allowed against the teacher (points)"),
    "latency_batch": Spec(int, presets={"cpu": 256, "gpu": 256}, low=1, help="batch size of latency measurements"),
    "latency_blocks": Spec(int, presets={"cpu": 9, "gpu": 25}, low=6, high=200,
                           help="timed blocks per latency measurement (nc.latency.measure; >= 6 for a 95 % interval)"),
    "ort": Spec(bool, True, help="export the ledger models to ONNX and time them on ONNX Runtime (CPU, same threads)"),
    "ort_engines": Spec(list, presets={"cpu": ["ort_fp32", "ort_int8_static"],
                                       "gpu": ["ort_fp32", "ort_int8_dynamic", "ort_int8_static"]},
                        item=str, choices=("ort_fp32", "ort_int8_dynamic", "ort_int8_static"),
                        help="ONNX Runtime engines of the ledger (int8 dynamic turns convolutions into the slow "
                             "ConvInteger: make bench measures it)"),
    "pt2e": Spec(bool, presets={"cpu": False, "gpu": True},
                 help="int8 through PT2E (torchao, compiled with inductor) beside eager torch.ao int8 "
                      "(off in the cpu preset: the compile alone takes tens of seconds; make bench times it)"),
    "sparse_sparsities": Spec(list, [0.5, 0.8, 0.9, 0.99], item=float, low=0.0, high=0.995,
                              help="sparsities of the dense vs CSR sparse-kernel latency check"),
}
