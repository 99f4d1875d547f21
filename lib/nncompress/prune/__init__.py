"""Pruning: importance criteria, masks, physical channel removal, schedules, lottery tickets.

One public API, split by job (everything is re-exported here, so ``nc.prune.X`` works):

* :mod:`.criteria` - which channels matter: filter norms (Li et al. 2017), FPGM (He et al.
  2019), BN |gamma| with the slimming penalty and a global threshold (Liu et al. 2017), APoZ (Hu et al.
  2016), first-order Taylor (Molchanov et al. 2019).
* :mod:`.masks` - unstructured magnitude pruning on ``torch.nn.utils.prune`` masks: one
  threshold over all layers or a sparsity per layer (Han et al. 2015; Han, Mao & Dally 2016).
* :mod:`.units` / :mod:`.channels` - structured pruning: the channel groups of a model,
  physically removed (:func:`prune_channels`), BN re-calibration, saving / loading.
* :mod:`.schedules` - one-shot, iterative prune + fine-tune, AGP (Zhu & Gupta 2017, eq. 1).
* :mod:`.sensitivity` - prune one layer alone (Li et al. 2017, fig. 2).
* :mod:`.lottery` - lottery tickets with rewinding and their controls (Frankle & Carbin
  2019; Frankle et al. 2020; Zhou et al. 2019), Scratch-E / Scratch-B (Liu et al. 2019).
"""
from __future__ import annotations

from .channels import (load_pruned, prune_channels, recalibrate_bn, save_pruned, select_channels,
                       structured_prune, zero_channels)
from .checks import check_choice, check_ratio
from .criteria import (CRITERIA, STRUCTURED_CRITERIA, apoz, bn_gamma_importance, bn_l1_penalty,
                       filter_importance, global_keep, input_batches, run_inputs, slimming_objective,
                       taylor_importance, unit_scores)
from .heads import head_importance, mlp_importance, prune_by_importance, prune_structure
from .lottery import CONTROLS, control_epochs, control_run, lottery_level, next_masks, scratch_budgets, scratch_epochs
from .masks import (PRUNABLE, SCOPES, apply_masks, has_masks, keep_masks_callback, layer_sparsities,
                    magnitude_prune, masks, per_layer_values, prunable, prune_to_sparsity, remove_masks,
                    sparsity, weight_layers)
from .schedules import agp_sparsity, imp_sparsity, iterative_prune
from .sensitivity import sensitivity
from .units import channel_counts, out_dim, unit_names, units

__all__ = ["load_pruned", "prune_channels", "recalibrate_bn", "save_pruned", "select_channels",
           "structured_prune", "zero_channels", "check_choice", "check_ratio", "CRITERIA",
           "STRUCTURED_CRITERIA", "apoz", "bn_gamma_importance", "bn_l1_penalty", "filter_importance",
           "global_keep", "input_batches", "run_inputs", "slimming_objective", "taylor_importance", "unit_scores", "CONTROLS", "control_epochs", "control_run", "lottery_level",
           "next_masks", "scratch_budgets", "scratch_epochs", "PRUNABLE", "SCOPES", "apply_masks", "has_masks",
           "keep_masks_callback", "layer_sparsities", "magnitude_prune", "masks", "per_layer_values",
           "prunable", "prune_to_sparsity", "remove_masks", "sparsity", "weight_layers", "agp_sparsity",
           "imp_sparsity", "iterative_prune", "sensitivity", "channel_counts", "out_dim", "unit_names", "units",
           "head_importance", "mlp_importance", "prune_by_importance", "prune_structure"]
