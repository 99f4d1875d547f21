"""int8 through PyTorch's supported export path: PT2E (``torch.export`` + quantizer).

Eager-mode ``torch.ao.quantization`` (:mod:`.int8`) is deprecated; its successor is PT2E
post-training quantization: the model is captured as a graph with ``torch.export``, a
*quantizer* (here the x86 inductor quantizer: activations uint8 per tensor, weights int8
symmetric per output channel - Jacob et al. 2018, eq. 1, ``r = S (q - Z)``) annotates where
quantize/dequantize pairs go, ``prepare_pt2e`` inserts observers, calibration records the
activation ranges and ``convert_pt2e`` folds the weights into int8 constants.

In torch 2.14 PT2E is no longer part of ``torch.ao.quantization`` (there is no
``torch.ao.quantization.quantize_pt2e``): it lives in the ``torchao`` package
(``torchao.quantization.pt2e``), which this module imports lazily.

The converted graph is a *reference* model: eager execution dequantizes the int8 weights
and runs float kernels between quantize/dequantize pairs (the numerics of int8, not its
speed).  Speed comes from ``compile=True``: ``torch.compile`` with inductor and weight
freezing pattern-matches the pairs into oneDNN int8 convolution/linear kernels.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings

import torch
import torch.nn as nn

TORCHAO_PIN = "torchao==0.18.0"


@contextlib.contextmanager
def _quiet_torchao_import():
    """torchao's import registers an Enum with torch's pytree, which logs one deprecation
    notice from ``torch.utils._pytree``; that logger is raised to ERROR during the import."""
    log = logging.getLogger("torch.utils._pytree")
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


def _pt2e():
    try:
        with _quiet_torchao_import():
            from torchao.quantization import pt2e
            from torchao.quantization.pt2e import quantize_pt2e
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError as err:
        raise ImportError(f"int8_pt2e needs the torchao package ({TORCHAO_PIN}): PT2E quantization moved out of "
                          f"torch.ao.quantization in this torch ({torch.__version__})") from err
    return pt2e, quantize_pt2e, xiq


def int8_pt2e(model: nn.Module, calibration_inputs, *, n_calibration: int = 256, batch_size: int = 256,
              reduce_range: bool = True, compile: bool = False) -> nn.Module:
    """Post-training static int8 quantization of ``model`` (a copy) through PT2E.

    ``calibration_inputs``: a tensor of inputs or a ``DeviceData`` (its ``.x``); the first
    ``n_calibration`` are run through the observed graph.  The graph is exported with a
    dynamic batch axis.  Returns the converted ``GraphModule`` (``compile=False``: the eager
    reference - int8 weights, float kernels) or its ``torch.compile``-d inductor version with
    frozen weights (``compile=True``: int8 kernels; compiled on the first calibration batch).

    ``reduce_range``: activations in 7 bits ([0, 127]), as the eager x86 path
    (:func:`nncompress.quantize.int8_qconfig`) and :func:`nncompress.deploy.ort_int8_static` do.
    The quantizer's own default is 8 bits, which the int8 kernels of CPUs without VNNI saturate
    (u8 x s8 pairs summed in 16 bits; torchao: "Set it to True on earlier CPUs without VNNI").
    Measured on this AVX2 machine, trained MLP: compiled int8 accuracy 0.890 with 8 bits against
    0.937 for the reference graph and 0.935 for float.
    """
    if not (isinstance(n_calibration, int) and n_calibration >= 2):
        raise ValueError(f"n_calibration={n_calibration!r} is not allowed: expected an int >= 2")
    if not (isinstance(batch_size, int) and batch_size >= 2):
        raise ValueError(f"batch_size={batch_size!r} is not allowed: expected an int >= 2")
    pt2e, quantize_pt2e, xiq = _pt2e()
    x = getattr(calibration_inputs, "x", calibration_inputs)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"calibration_inputs={type(calibration_inputs).__name__} is not allowed: expected a tensor "
                         "of model inputs or a DeviceData")
    x = x[:n_calibration].detach().cpu().float()
    if len(x) < 2:
        raise ValueError(f"calibration_inputs has {len(x)} sample(s): expected at least 2 (the export traces a "
                         "batch axis, which a single sample would fix to 1)")
    float_model = copy.deepcopy(model).cpu().eval()
    example = x[:min(batch_size, len(x))]
    graph = torch.export.export(float_model, (example,),
                                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range))
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            prepared(x[start:start + batch_size])
    converted = quantize_pt2e.convert_pt2e(prepared)
    _drop_unused_attributes(converted)
    # an exported graph refuses .train()/.eval(); allow them (they switch the graph's dropout /
    # BN ops), so the course's evaluate/predict can treat it as any other model
    pt2e.move_exported_model_to_eval(converted)
    pt2e.allow_exported_model_train_eval(converted)
    if not compile:
        return converted
    compiled = _Frozen(converted)
    with torch.no_grad():
        compiled(example)
    return compiled


class _Frozen(nn.Module):
    """``torch.compile`` (inductor) of a converted graph with weight freezing, the setting under
    which inductor packs the int8 weights and lowers q/dq + conv/linear to oneDNN int8 kernels.
    Freezing is an inductor *global* (passing it as ``torch.compile(options=...)`` fails in
    torch 2.14: ``onednn.qlinear_prepack is not an OpOverload``), so every call - and every
    recompilation for a new input shape - runs under ``torch._inductor.config.patch(freezing=True)``."""

    def __init__(self, graph: torch.fx.GraphModule):
        super().__init__()
        self.graph_module = graph
        # one static graph per batch size: inductor's int8 conv1d lowering fails on a symbolic
        # batch axis in torch 2.14.1 (a stride assertion in the generated code)
        self._compiled = torch.compile(graph, dynamic=False)

    def forward(self, x):
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True), warnings.catch_warnings():
            # inductor's int8 weight packing (mkldnn_lowerings) copy-constructs a tensor while compiling
            warnings.filterwarnings("ignore", message=r"To copy construct from a tensor", category=UserWarning)
            return self._compiled(x)


def _drop_unused_attributes(gm: torch.fx.GraphModule) -> None:
    """``convert_pt2e`` leaves the float weights it replaced by int8 constants attached to
    the module; remove every parameter and buffer no graph node reads."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        delattr(owner, attr)


def pt2e_weight_dtypes(gm: nn.Module) -> dict[str, torch.dtype]:
    """The dtype of every weight a convolution or linear op of the converted graph ``gm``
    reads (through its ``dequantize`` node when quantized): ``{node name: dtype}``."""
    gm = getattr(gm, "graph_module", gm)  # a compile=True model
    convs = {torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.linear.default}
    out = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in convs:
            continue
        w = node.args[1]
        if w.op == "call_function" and "dequantize" in str(w.target):
            w = w.args[0]
        out[node.name] = functools.reduce(getattr, w.target.split("."), gm).dtype if w.op == "get_attr" else None
    return out


__all__ = ["int8_pt2e", "pt2e_weight_dtypes", "TORCHAO_PIN"]
