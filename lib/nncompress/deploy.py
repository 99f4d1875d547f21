"""The engine compressed models are deployed on: ONNX export and ONNX Runtime (CPU).

* :func:`export_onnx` writes a model as an ONNX graph (TorchScript exporter, opset
  :data:`OPSET`, a dynamic batch axis), checks it with ``onnx.checker`` and runs it once
  in ONNX Runtime against PyTorch; a model the exporter cannot export faithfully (e.g. the
  data-dependent control flow of early-exit inference, which tracing would freeze into one
  branch) raises :class:`ExportError` naming the model class.
* :func:`ort_session` opens a file on the CPU execution provider with the thread count fixed
  (``intra_op = threads``, ``inter_op = 1``, sequential execution), so it is timed under the
  same conditions as eager PyTorch; :func:`ort_predict`, :func:`ort_accuracy` and
  :func:`ort_latency` (through :func:`nncompress.latency.measure`) use it.
* :func:`ort_int8_dynamic` / :func:`ort_int8_static`: ONNX Runtime's own int8 quantization
  (Jacob et al. 2018, eq. 1, ``r = S (q - Z)``): dynamic (int8 weights, activation ranges
  computed per batch at run time) and static QDQ (weights per output channel, activation
  ranges calibrated on sample inputs).

Every file is written atomically (a temporary file in the target folder, then renamed).
Foundation module: imports torch, onnx, onnxruntime and :mod:`nncompress.latency` only.
"""
from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn

from . import latency

#: ONNX opset of every export (ONNX Runtime 1.18+ runs it; fixed so files do not change with torch)
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"

# The TorchScript exporter (``dynamo=False``) announces that it is legacy; this notice - and
# nothing else - is silenced, only while :func:`export_onnx` calls it.
_EXPORT_NOTICES = (
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed\. Please remove usage of this function"),
)


class ExportError(RuntimeError):
    """The ONNX exporter cannot export this model (faithfully)."""


class _LogitsOnly(nn.Module):
    """``model(x)`` with no other argument: the TorchScript exporter turns the defaults of
    ``forward``'s keyword arguments (``return_features=False``) into graph inputs, which then
    make ``if return_features`` a data-dependent branch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


@contextlib.contextmanager
def _tracer_warnings_as_errors(model_name: str):
    """Run the export with its own notices silenced; a ``TracerWarning`` (a tensor turned into
    a Python value: the trace would not generalize to other inputs) becomes an ExportError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category, message in _EXPORT_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    for w in caught:
        if w not in tracer:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if tracer:
        raise ExportError(
            f"export_onnx: {model_name} cannot be exported: its forward turns a tensor into a Python value "
            f"(data-dependent control flow, e.g. early-exit inference), so the traced graph would hard-code "
            f"one branch ({tracer[0].filename}:{tracer[0].lineno}: {str(tracer[0].message)[:120]})")


@contextlib.contextmanager
def _atomic_path(path: Path):
    """A temporary file next to ``path``, renamed onto it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, prefix=f".{path.stem}-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, *, opset: int = OPSET,
                verify: bool = True, atol: float = 1e-4) -> Path:
    """Export ``model`` (a copy, in eval mode, on the CPU) to the ONNX file ``path``.

    The graph has one input ``"input"`` (the shape of ``example`` with a dynamic batch axis)
    and one output ``"logits"``.  The file is checked with ``onnx.checker``; with ``verify``
    ONNX Runtime runs it on ``example`` and its output must equal PyTorch's within ``atol``
    (otherwise :class:`ExportError`).  Returns the path.
    """
    import onnx

    if not isinstance(example, torch.Tensor):
        raise ValueError(f"example={type(example).__name__} is not allowed: expected a torch.Tensor batch")
    if not (isinstance(opset, int) and opset >= 13):
        raise ValueError(f"opset={opset!r} is not allowed: expected an int >= 13")
    name = type(model).__name__
    path = Path(path)
    wrapped = _LogitsOnly(copy.deepcopy(model).cpu().eval()).eval()
    x = example.detach().cpu()
    with _atomic_path(path) as tmp:
        try:
            with _tracer_warnings_as_errors(name), torch.no_grad():
                torch.onnx.export(wrapped, (x,), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except ExportError:
            raise
        except Exception as err:  # the exporter's errors have no common base class
            raise ExportError(f"export_onnx: the TorchScript ONNX exporter cannot export {name} "
                              f"({type(err).__name__}: {_first_line(err)})") from err
        try:
            onnx.checker.check_model(str(tmp))
        except onnx.checker.ValidationError as err:
            raise ExportError(f"export_onnx: the ONNX graph of {name} is invalid ({err})") from err
        if verify:
            _verify(wrapped, x, tmp, name, atol)
    return path


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else "no message")[:300]


def _verify(model: nn.Module, x: torch.Tensor, path: Path, name: str, atol: float) -> None:
    with torch.no_grad():
        want = model(x)
    try:
        got = ort_predict(ort_session(path), x)
    except Exception as err:  # ORT's errors (unsupported op, ...) share no base class either
        raise ExportError(f"export_onnx: ONNX Runtime cannot run the exported {name} "
                          f"({type(err).__name__}: {_first_line(err)})") from err
    diff = (got - want.float()).abs().max().item() if got.shape == want.shape else float("inf")
    if not diff <= atol:
        raise ExportError(f"export_onnx: ONNX Runtime's output of {name} differs from PyTorch's by {diff:.3g} "
                          f"(> atol={atol}): the exported graph does not compute the model")


def ort_session(path: str | os.PathLike, threads: int = 1):
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU execution provider with
    ``threads`` intra-op threads, one inter-op thread, sequential execution and all graph
    optimizations."""
    import onnxruntime as ort

    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ValueError(f"threads={threads!r} is not allowed: expected an integer >= 1")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: no notices about unused initializers
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def session_threads(session) -> int:
    """The intra-op thread count ``session`` was opened with."""
    return int(session.get_session_options().intra_op_num_threads)


def _feed(session, x: torch.Tensor) -> dict:
    return {session.get_inputs()[0].name: x.detach().cpu().float().contiguous().numpy()}


def ort_predict(session, x: torch.Tensor) -> torch.Tensor:
    """The session's first output on the batch ``x``, as a float tensor."""
    return torch.from_numpy(session.run(None, _feed(session, x))[0])


def ort_accuracy(session, data, *, batch_size: int = 1024) -> float:
    """Top-1 accuracy of the session's logits on ``data`` (anything with ``.x`` and ``.y``, such
    as :class:`nncompress.data.DeviceData`), in batches of ``batch_size``."""
    if not (hasattr(data, "x") and hasattr(data, "y")):
        raise ValueError(f"data={type(data).__name__} is not allowed: expected an object with .x and .y "
                         "(e.g. nncompress.data.DeviceData)")
    x, y = data.x.cpu(), data.y.cpu()
    if len(x) == 0:
        raise ValueError("data is empty: expected at least one sample")
    correct = sum(int((ort_predict(session, x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def ort_latency(session, x: torch.Tensor, *, threads: int | None = None, **options: Any) -> latency.Latency:
    """:func:`nncompress.latency.measure` of ``session.run`` on the batch ``x`` (converted to
    numpy once, outside the timing).  ``threads`` defaults to the session's intra-op count
    (ORT's threads are fixed when the session is opened; a different value is refused, since
    the result would report a thread count it was not measured with)."""
    have = session_threads(session)
    if threads is None:
        threads = have
    if threads != have:
        raise ValueError(f"threads={threads!r} is not allowed: this session was opened with "
                         f"{have} intra-op thread(s); open it with ort_session(path, threads={threads})")
    return latency.measure(ort_runner(session, x), threads=threads, **options)


def ort_runner(session, x: torch.Tensor):
    """A no-argument callable that runs ``session`` on the batch ``x`` (converted to numpy
    once, here, so the conversion is not timed) - what :func:`ort_latency` times, for
    timing ORT together with other engines (:func:`nncompress.latency.measure_interleaved`)."""
    feed = _feed(session, x)
    return lambda: session.run(None, feed)


def ort_int8_dynamic(path_in: str | os.PathLike, path_out: str | os.PathLike, *,
                     op_types: Iterable[str] | None = None) -> Path:
    """ONNX Runtime's dynamic int8 quantization of ``path_in`` into ``path_out``.

    Weights become int8 (``QuantType.QInt8``, one scale per tensor); activations are
    quantized at run time from each batch's range, so no calibration data are needed.
    ``op_types``: the ONNX ops to quantize (``None``: ORT's default set - MatMul, Gemm,
    Conv (as ``ConvInteger``), ...; ``("MatMul", "Gemm")`` for the Linear layers only).
    The graph is first pre-processed (shape inference, graph optimization) as ORT advises.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path_out = Path(path_out)
    with _preprocessed(path_in) as src, _atomic_path(path_out) as tmp:
        quantize_dynamic(str(src), str(tmp), op_types_to_quantize=None if op_types is None else list(op_types),
                         weight_type=QuantType.QInt8)
    return path_out


@contextlib.contextmanager
def _preprocessed(path_in: str | os.PathLike):
    """ORT's quantization pre-processing (symbolic shape inference, graph optimization) of
    ``path_in`` into a temporary file."""
    from onnxruntime.quantization import quant_pre_process

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "preprocessed.onnx"
        quant_pre_process(str(path_in), str(out))
        yield out


class _Batches:
    """``onnxruntime.quantization.CalibrationDataReader`` over a tensor of inputs."""

    def __init__(self, name: str, x: torch.Tensor, batch_size: int):
        self._it = iter([{name: x[i:i + batch_size].numpy()} for i in range(0, len(x), batch_size)])

    def get_next(self):
        return next(self._it, None)


def ort_int8_static(path_in: str | os.PathLike, path_out: str | os.PathLike, calibration_inputs: torch.Tensor,
                    *, per_channel: bool = True, reduce_range: bool = True, batch_size: int = 64) -> Path:
    """ONNX Runtime's static int8 quantization of ``path_in`` into ``path_out`` (QDQ format).

    Weights: int8, symmetric, one scale per output channel (``per_channel``); activations:
    uint8 with ranges calibrated (min/max) on ``calibration_inputs``, a tensor of model inputs.
    The graph is first pre-processed (shape inference, graph optimization) as ORT advises.
    Convolutions, Gemm and MatMul run as int8 kernels once ORT fuses the QDQ pairs.
    ``reduce_range``: 7-bit weights.  On x86 CPUs without VNNI, ORT's u8 x s8 kernels sum
    products pairwise in 16 bits (``VPMADDUBSW``), which saturates with full-range weights
    (measured here on AVX2: MLP test accuracy 0.895 instead of 0.931 with ``reduce_range``,
    float 0.935) - the same reason PyTorch's x86/fbgemm default keeps activations in 7 bits.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not (isinstance(calibration_inputs, torch.Tensor) and len(calibration_inputs) > 0):
        raise ValueError("calibration_inputs is not allowed: expected a non-empty tensor of model inputs")
    name = onnx.load(str(path_in), load_external_data=False).graph.input[0].name
    x = calibration_inputs.detach().cpu().float().contiguous()
    path_out = Path(path_out)
    with _preprocessed(path_in) as src, _atomic_path(path_out) as tmp:
        quantize_static(str(src), str(tmp), _Batches(name, x, batch_size), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return path_out


def int8_initializers(path: str | os.PathLike) -> int:
    """Number of int8/uint8 weight values stored in the ONNX file ``path`` (0 for a float model)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return sum(numpy_helper.to_array(t).size for t in model.graph.initializer
               if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8))


__all__ = ["OPSET", "ExportError", "export_onnx", "ort_session", "session_threads", "ort_predict",
           "ort_accuracy", "ort_latency", "ort_runner", "ort_int8_dynamic", "ort_int8_static", "int8_initializers"]
