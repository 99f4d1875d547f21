"""Interactive controls (ipywidgets ``interact``) shared by the chapters.

In a headless run (``NNCOMPRESS_RUN=1``, set by ``python -m nncompress.run`` for its kernels)
there is nobody to move a slider, so a control draws its default view once, as a plain figure,
and creates no widget: an ipywidgets Output capture executed through papermill/nbclient with
ipykernel 7 sometimes never delivers its execute reply (seen in chapters 01 and 07: the kernel
idle, the client waiting until the time limit).  In JupyterLab the widgets are interactive
(``tests/test_browser.py`` moves the temperature slider).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch


def headless() -> bool:
    """True inside a kernel started by the course runner (``NNCOMPRESS_RUN=1``)."""
    return os.environ.get("NNCOMPRESS_RUN") == "1"


def interact(fn: Callable[..., Any], **controls: Any):
    """``ipywidgets.interactive(fn, **controls)`` (the last expression of a cell displays it);
    headless, ``fn`` is called once with the controls' current values and nothing is returned."""
    if headless():
        fn(**{name: getattr(c, "value", c) for name, c in controls.items()})
        return None
    import ipywidgets as w

    return w.interactive(fn, **controls)


def temperature_explorer(logits: torch.Tensor, classes: Sequence[str], *, true_class: int | None = None,
                         t_min: float = 0.25, t_max: float = 50.0, value: float = 1.0):
    """A log-scale slider on the temperature T over one sample's logits (Hinton 2015, eq. 1).

    Draws ``softmax(logits / T)`` as bars and prints its entropy; moving the slider redraws.
    Returns the ``interactive`` widget: the last expression of a cell, it displays itself.
    """
    import math

    import ipywidgets as w
    import matplotlib.pyplot as plt

    from ..distill import softmax_t
    from ..plots import prob_bars

    logits = logits.detach().cpu().float()

    def draw(T=value):
        p = softmax_t(logits, T)
        ent = -(p * p.clamp_min(1e-12).log()).sum().item()
        fig, ax = plt.subplots(figsize=(6, 2.8))
        prob_bars(p, classes, ax=ax, highlight=true_class,
                  title=f"T = {T:.2f}   entropy = {ent:.2f} nats (max {math.log(len(classes)):.2f})")
        plt.show()

    if headless():
        draw(value)
        return None
    slider = w.FloatLogSlider(value=value, base=10, min=math.log10(t_min), max=math.log10(t_max),
                              step=0.05, description="T", continuous_update=True,
                              readout_format=".2f")
    return w.interactive(draw, T=slider)
