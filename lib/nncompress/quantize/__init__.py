"""Quantization: Deep Compression's weight sharing, BinaryConnect and int8.

One public API, split by job (everything is re-exported here, so ``nc.quantize.X`` works):

* :mod:`.sharing` - k-means weight sharing with trained centroids (Han, Mao & Dally 2016,
  sec. 3, eq. 3).  Its pruning stage is :mod:`nncompress.prune` (one unstructured-pruning
  API: :func:`nncompress.prune.prune_to_sparsity`, :func:`nncompress.prune.remove_masks`,
  :func:`nncompress.prune.layer_sparsities`).
* :mod:`.binary` - BinaryConnect (Courbariaux, Bengio & David 2015, eq. 1-3).
* :mod:`.int8` - int8 dynamic, static and quantization-aware training (Jacob et al. 2018,
  eq. 1), with the quantized engines and the silenced ``torch.ao`` notices.

Low-rank factorisation lives in :mod:`nncompress.lowrank`.
"""
from __future__ import annotations

from .binary import BinarizeSTE, BinaryLinear, binarize, binarize_model, binary_bytes, glorot_scale
from .int8 import (BACKENDS, calibration_batch, OBSERVERS, Int8Model, check_backend, convert_qat, fusion_groups, int8_dynamic,
                   int8_qat, int8_qconfig, int8_static, prepare_qat, quantized_engine, quantized_layers,
                   quantized_weight_count, quiet_torch_ao)
from .pt2e import int8_pt2e, pt2e_weight_dtypes
from .sharing import (SharedWeight, centroid_grad, dense_state_dict, distinct_values, kmeans_1d, linear_init,
                      share_weights, shared_layers)
from .weight_only import (QuantLinear, dequantize_groups, fake_quantize, pack_int4, quantize_groups,
                          quantize_linears, quantized_stats, unpack_int4, pack_codes,
                          unpack_codes, slot_bits)
from .awq import act_scale, awq_quantize, awq_scale_model, awq_scales, search_alpha

__all__ = ["BinarizeSTE", "BinaryLinear", "binarize", "binarize_model", "binary_bytes", "glorot_scale",
           "BACKENDS", "OBSERVERS", "Int8Model", "check_backend", "convert_qat", "fusion_groups", "int8_dynamic",
           "int8_qat", "int8_qconfig", "int8_static", "int8_pt2e", "pt2e_weight_dtypes", "calibration_batch", "prepare_qat", "quantized_engine", "quantized_layers",
           "quantized_weight_count", "quiet_torch_ao", "SharedWeight", "centroid_grad", "dense_state_dict",
           "distinct_values", "kmeans_1d", "linear_init", "share_weights", "shared_layers", "QuantLinear", "dequantize_groups", "fake_quantize", "pack_int4",
           "quantize_groups", "quantize_linears", "quantized_stats", "unpack_int4", "pack_codes", "unpack_codes", "slot_bits", "act_scale", "awq_quantize",
           "awq_scale_model", "awq_scales", "search_alpha"]
