"""Chapter 13 - compressing a small transformer language model: parameters.

CPU preset: a 2-layer byte-level TinyGPT (d_model 64, 4 heads, context 32) trained on
100 kB of the Python standard library's own sources (PSF licence, on every machine with
Python; no download), a 1-layer student trained from scratch and by per-position KD
(3 seeds, paired 95 % t intervals), weight-only RTN int8/int4/int3/int2 per channel and group-wise,
AWQ at int4 and int3, and head + MLP-width pruning with fine-tuning.
GPU preset: the same code with a larger model, context and corpus.
"""
from .common import epochs
from ..params import Spec, common_specs

NOTEBOOK = "13_transformer_compression"
TITLE = "transformer compression"
TOPIC = "a byte-level GPT on the stdlib sources: per-position KD, weight-only int8/int4 (per channel, group-wise) in packed bytes, AWQ (Lin et al. 2024), head and MLP-width pruning (Michel et al. 2019) with measured latency per token"

SPECS = {
    **common_specs(),
    "corpus_bytes": Spec(int, presets={"cpu": 100_000, "gpu": 4_000_000}, low=2_000, high=100_000_000,
                         help="bytes of stdlib source read (sorted Lib/*.py, then cut)"),
    "context": Spec(int, presets={"cpu": 32, "gpu": 256}, low=4, high=4096, help="context length in bytes"),
    "d_model": Spec(int, presets={"cpu": 64, "gpu": 384}, low=8, high=8192, help="teacher width"),
    "n_layers": Spec(int, presets={"cpu": 2, "gpu": 6}, low=1, high=64, help="teacher blocks"),
    "n_heads": Spec(int, presets={"cpu": 4, "gpu": 6}, low=1, high=64, help="teacher heads per block"),
    "teacher_epochs": epochs({"cpu": 3, "gpu": 10}, "teacher training epochs"),
    "student_d_model": Spec(int, presets={"cpu": 32, "gpu": 192}, low=8, high=8192, help="student width"),
    "student_layers": Spec(int, presets={"cpu": 1, "gpu": 3}, low=1, high=64, help="student blocks"),
    "student_epochs": epochs({"cpu": 2, "gpu": 10}, "student training epochs (scratch and KD alike)"),
    "lr": Spec(float, presets={"cpu": 3e-3, "gpu": 1e-3}, low=1e-6, high=1.0, help="learning rate (AdamW, cosine)"),
    "batch_size": Spec(int, presets={"cpu": 32, "gpu": 64}, low=1, high=65536, help="windows per batch"),
    "temperature": Spec(float, 1.0, low=0.05, high=100.0,
                        help="KD temperature T (1: word-level KD, Kim & Rush 2016)"),
    "alpha": Spec(float, 0.9, low=0.0, high=1.0, help="weight of the soft (KD) term (chapter 01's 0.9)"),
    "n_seeds": Spec(int, presets={"cpu": 3, "gpu": 3}, low=2, high=20, help="student seeds (paired intervals)"),
    "group_sizes": Spec(list, presets={"cpu": [16, 32, 64], "gpu": [32, 64, 128]}, item=int, low=2, high=8192,
                        help="group sizes of group-wise quantization (each must divide d_model)"),
    "bits": Spec(list, [8, 4, 3, 2], item=int, low=2, high=8,
                 help="weight bit widths of the RTN sweep (2, 3, 4 or 8; 3-bit codes are stored in 4-bit slots)"),
    "awq_bits": Spec(list, [4, 3], item=int, low=2, high=8, help="bit widths at which AWQ is run (each also in bits)"),
    "n_calibration": Spec(int, presets={"cpu": 32, "gpu": 128}, low=1, high=100_000,
                          help="training windows for AWQ calibration"),
    "awq_grid": Spec(int, 20, low=1, high=1000, help="grid points of AWQ's alpha search in [0, 1]"),
    "head_frac": Spec(float, 0.5, low=0.0, high=0.95, help="fraction of heads removed"),
    "mlp_frac": Spec(float, 0.5, low=0.0, high=0.95, help="fraction of MLP units removed per block"),
    "finetune_epochs": epochs({"cpu": 1, "gpu": 3}, "fine-tuning epochs after pruning", low=0),
}


def check(params) -> str | None:
    for name in ("bits", "awq_bits"):
        bad = [b for b in getattr(params, name) if b not in (2, 3, 4, 8)]
        if bad:
            return f"parameter {name} = {getattr(params, name)!r} is not allowed: every width must be 2, 3, 4 or 8"
    if 4 not in params.bits or 4 not in params.awq_bits or 8 not in params.bits:
        return (f"parameters bits = {params.bits!r}, awq_bits = {params.awq_bits!r}: the chapter's ledger needs "
                f"8 and 4 in bits and 4 in awq_bits")
    missing = [b for b in params.awq_bits if b not in params.bits]
    if missing:
        return f"parameter awq_bits = {params.awq_bits!r}: {missing} not in bits = {params.bits!r} (AWQ is compared with RTN)"
    for g in params.group_sizes:
        if params.d_model % g:
            return (f"parameter group_sizes = {params.group_sizes!r} is not allowed: every group size must divide "
                    f"d_model = {params.d_model} (the MLP width 4 * d_model follows)")
    if params.d_model % params.n_heads:
        return f"parameter n_heads = {params.n_heads!r} must divide d_model = {params.d_model}"
    return None
