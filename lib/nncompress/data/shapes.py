"""``shapes``: a procedural 32x32 RGB image set with confusable class groups.

A CIFAR-sized stand-in that is generated in about a second on one CPU core and never
downloaded, but that separates model capacities: its ten classes come in three groups
of look-alikes.  Measured with ``SimpleCNN`` trained 8 epochs on 5000 images (Adam,
lr 2e-3, batch 128, cosine schedule), tested on 2000: widths (4, 8, 16) ~45 %,
(8, 16, 32) ~60 % (~73 % with batch 64), (32, 64, 128) at depth 2 ~97 %; 70-80 % of
the small models' errors and all of the big one's fall within a group.

Classes (index: name - what distinguishes it *within* its group); the groups differ in
coarse structure (filled blob / outline with a hole / thin bars), the classes within a
group in finer cues (corners, elongation, angle):

* group 0, **solid** (filled, all four with the same area, so size is no cue):
  ``0 circle``; ``1 ellipse`` (axis ratio 0.45-0.9: the roundest are genuinely hard
  to tell from a circle); ``2 square``; ``3 triangle`` (equilateral).
* group 1, **hollow** (outlines with a hole):
  ``4 ring`` (hole 0.35-0.5 of the radius); ``5 frame`` (hollow square, inner side
  0.35-0.5 of the outer); ``6 hollow_triangle`` (inner size 0.2-0.35 of the outer).
* group 2, **bars**: ``7 plus`` (two crossing bars, axis-aligned within +-20 deg);
  ``8 cross`` (the same turned 45 +- 20 deg, an "x" - the two meet within 5 deg);
  ``9 asterisk`` (three bars 60 deg apart).

Rotation is free wherever it is not the cue (everything but plus/cross).  Nuisance
factors, all drawn independently of the class: position (centre within +-28 % of the
half-width), size (about 7-11 px radius), colours (background brightness uniform in
[0, 1], foreground brightness 0.45-0.75 brighter *or* darker, each with a random tint:
colour carries no class information), a linear background gradient, 1-3 faint thin
distractor strokes behind the shape and, in 20 % of the images, one in front of it,
and i.i.d. gaussian pixel noise (sigma 0.02-0.08).  Shapes are drawn anti-aliased
from signed distance functions.  :data:`GROUPS` / :func:`class_groups` give the groups.

Everything is vectorised in torch and deterministic from ``seed`` through
``torch.Generator`` objects (the global RNG is never touched).  Images are generated in
blocks of 1000 with a generator per (seed, split, block), so the first ``n`` images of
a split do not depend on how many are asked for, and the test set does not depend on
``n_train``.
"""
from __future__ import annotations

import math

import torch

from .splits import Splits
from .checks import check_count
from .device import DeviceData
from .splits import split_off

CLASSES = ["circle", "ellipse", "square", "triangle",
           "ring", "frame", "hollow_triangle",
           "plus", "cross", "asterisk"]
#: class indices of each group of look-alike classes
GROUPS: list[list[int]] = [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
GROUP_NAMES = ["solid", "hollow", "bars"]
DEFAULT_N_TRAIN = 10000
DEFAULT_N_TEST = 2000
#: at most this many images (n_train + n_test) are generated: ~1.2 GB of float32 at 32x32
MAX_SAMPLES = 100_000
#: the largest image side accepted (the generator's cost grows with its square)
MAX_SIZE = 256
#: bump when anything here changes the images a given (seed, sizes) produce
GENERATOR_VERSION = 1
_BLOCK = 1000
_SPLIT_ID = {"train": 0, "test": 1}
_JITTER = math.radians(20.0)
#: class -> range of its shape parameter (hollow: inner/outer ratio, bars: half-width)
_SHAPE_PAR = {1: (0.45, 0.9), 4: (0.35, 0.5), 5: (0.35, 0.5), 6: (0.2, 0.35),
              7: (0.17, 0.27), 8: (0.17, 0.27), 9: (0.15, 0.24)}
# generator knobs (part of GENERATOR_VERSION: changing one changes the data)
_KNOBS = {"center": 0.28, "scale": (0.5, 0.75), "contrast": (0.45, 0.75), "chroma": (0.0, 0.3),
          "grad": 0.25, "strokes": (1, 3), "stroke_alpha": (0.2, 0.5), "front_p": 0.2,
          "noise": (0.02, 0.08)}


def class_groups() -> list[list[str]]:
    """The class names of each confusable group: ``[["circle", "ellipse", "square", "triangle"], ...]``."""
    return [[CLASSES[i] for i in group] for group in GROUPS]


def group_of() -> list[int]:
    """``group_of()[c]``: the group index of class ``c``."""
    out = [0] * len(CLASSES)
    for g, group in enumerate(GROUPS):
        for c in group:
            out[c] = g
    return out


# ---------------------------------------------------------------- signed distances
# All in the shape's local frame, where the shape has "radius" about 1.

def _sd_box(px, py, bx, by):
    qx, qy = px.abs() - bx, py.abs() - by
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _sd_ellipse(px, py, a):
    """Approximate distance to the ellipse with semi-axes (1, a) (Quilez' k0*(k0-1)/k1)."""
    k0 = torch.sqrt(px ** 2 + (py / a) ** 2)
    k1 = torch.sqrt(px ** 2 + (py / a ** 2) ** 2).clamp(min=1e-6)
    return k0 * (k0 - 1) / k1


def _rotate(px, py, angle):
    c, s = torch.cos(angle), torch.sin(angle)
    return c * px + s * py, -s * px + c * py


def _sd_bars(px, py, t, angles):
    """Union of bars of half-length 1 and half-width ``t`` at the given angles."""
    d = None
    for ang in angles:
        qx, qy = _rotate(px, py, torch.full_like(px, ang))
        di = _sd_box(qx, qy, 1.0, t)
        d = di if d is None else torch.minimum(d, di)
    return d


def _sd_ngon(px, py, k: int, apothem):
    """Regular ``k``-gon (a vertex on the +x axis) as the max of its edges' half-planes.

    Exact inside; outside it underestimates near the corners, which only sharpens the
    corners within the half-pixel anti-aliasing band.
    """
    d = None
    for i in range(k):
        ang = (2 * i + 1) * math.pi / k          # edge normals sit between the vertices
        di = px * math.cos(ang) + py * math.sin(ang) - apothem
        d = di if d is None else torch.maximum(d, di)
    return d


# Sizes are chosen so that every solid has the same area (~2.55 in local units):
# size says nothing about the class.
_R_CIRCLE = 0.9
_A_SQUARE = 0.8        # half side
_A_TRI = 0.7           # triangle apothem


def _class_sdf(c: int, px, py, a):
    """Signed distance of class ``c`` at local coordinates; ``a`` = the class's shape parameter.

    Ellipse: ``a`` = axis ratio; hollow classes: ``a`` = inner/outer size ratio;
    bars: ``a`` = bar half-width.
    """
    if c == 0:
        return torch.sqrt(px ** 2 + py ** 2) - _R_CIRCLE
    if c == 1:  # semi-axes (b, a b) with the circle's area: b = r / sqrt(a)
        b = _R_CIRCLE / torch.sqrt(a)
        return _sd_ellipse(px / b, py / b, a) * b
    if c == 2:
        return _sd_box(px, py, _A_SQUARE, _A_SQUARE)
    if c == 3:
        return _sd_ngon(px, py, 3, _A_TRI)
    if c == 4:
        r = torch.sqrt(px ** 2 + py ** 2)
        return (r - _R_CIRCLE * (1 + a) / 2).abs() - _R_CIRCLE * (1 - a) / 2
    if c == 5:
        mid = _A_SQUARE * (1 + a) / 2
        return _sd_box(px, py, mid, mid).abs() - _A_SQUARE * (1 - a) / 2
    if c == 6:
        return _sd_ngon(px, py, 3, _A_TRI * (1 + a) / 2).abs() - _A_TRI * (1 - a) / 2
    if c in (7, 8):
        return _sd_bars(px, py, a, (0.0, math.pi / 2))
    if c == 9:
        return _sd_bars(px, py, a, (0.0, math.pi / 3, 2 * math.pi / 3))
    raise ValueError(c)


def _sd_segment(px, py, ax, ay, bx, by):
    pax, pay, bax, bay = px - ax, py - ay, bx - ax, by - ay
    h = ((pax * bax + pay * bay) / (bax ** 2 + bay ** 2).clamp(min=1e-6)).clamp(0, 1)
    return torch.sqrt((pax - bax * h) ** 2 + (pay - bay * h) ** 2)


# ---------------------------------------------------------------- parameters, rendering

def _uniform(g, n, lo, hi, *shape):
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def _draw_params(g: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """All random choices for ``n`` images (the order of draws fixes the data: keep it)."""
    k = len(CLASSES)           # every aligned run of k images holds each class once
    y = torch.argsort(torch.rand(-(-n // k), k, generator=g), dim=1).flatten()[:n]
    p = {"y": y}
    kn = _KNOBS
    p["cx"] = _uniform(g, n, -kn["center"], kn["center"])
    p["cy"] = _uniform(g, n, -kn["center"], kn["center"])
    p["scale"] = _uniform(g, n, *kn["scale"])
    free = _uniform(g, n, 0, 2 * math.pi)
    jitter = _uniform(g, n, -_JITTER, _JITTER)
    # rotation is free except for plus (axis-aligned) vs cross (turned 45 deg), +- jitter
    p["angle"] = torch.where(y == 7, jitter, torch.where(y == 8, math.pi / 4 + jitter, free))
    u = torch.rand(n, generator=g)
    shape_par = torch.zeros(n)
    for c, (lo, hi) in _SHAPE_PAR.items():
        shape_par = torch.where(y == c, lo + (hi - lo) * u, shape_par)
    p["shape_par"] = shape_par
    # colours: random hue/saturation; brightness contrast |fg - bg| in kn["contrast"],
    # either polarity - so colour says nothing about the class but the shape is visible
    bg_lum = torch.rand(n, generator=g)
    gap = _uniform(g, n, *kn["contrast"])
    up = torch.rand(n, generator=g) < 0.5
    fg_lum = torch.where(up, bg_lum + gap, bg_lum - gap)
    fg_lum = torch.where((fg_lum > 1) | (fg_lum < 0), torch.where(up, bg_lum - gap, bg_lum + gap), fg_lum)
    bg_lum = bg_lum + (fg_lum.clamp(0, 1) - fg_lum)     # still out of range: shift both
    fg_lum = fg_lum.clamp(0, 1)

    def colour(lum):
        hue = torch.rand(n, 3, generator=g)
        chroma = _uniform(g, n, *kn["chroma"])[:, None]
        return (lum[:, None] + chroma * (hue - hue.mean(1, keepdim=True))).clamp(0, 1)

    p["bg"], p["fg"] = colour(bg_lum), colour(fg_lum)
    p["grad"] = _uniform(g, n, -kn["grad"], kn["grad"], 2)
    k = 4
    p["n_strokes"] = torch.randint(kn["strokes"][0], kn["strokes"][1] + 1, (n,), generator=g)
    p["strokes"] = _uniform(g, n, -1.1, 1.1, k, 4)          # endpoints
    p["stroke_w"] = _uniform(g, n, 0.5, 1.2, k)             # half-width in pixels
    p["stroke_rgb"] = torch.rand(n, k, 3, generator=g)
    p["stroke_alpha"] = _uniform(g, n, *kn["stroke_alpha"], k)
    p["front"] = torch.rand(n, generator=g) < kn["front_p"]          # one stroke over the shape
    p["front_seg"] = _uniform(g, n, -1.1, 1.1, 4)
    p["front_rgb"] = torch.rand(n, 3, generator=g)
    p["noise_sigma"] = _uniform(g, n, *kn["noise"])
    p["noise_seed"] = torch.randint(0, 2 ** 62, (1,), generator=g)
    return p


def _render(p: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Images ``(n, 3, size, size)`` in [0, 1] from parameters (noise added, then clipped)."""
    n = len(p["y"])
    px_size = 2.0 / size  # one pixel in image coordinates ([-1, 1])
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * px_size - 1
    v, u = torch.meshgrid(coords, coords, indexing="ij")       # v: rows (down), u: columns
    u, v = u[None], v[None]                                     # (1, H, W)

    # background: colour + linear gradient
    ramp = p["grad"][:, 0, None, None] * u + p["grad"][:, 1, None, None] * v     # (n, H, W)
    img = (p["bg"][:, :, None, None] + ramp[:, None]).clamp(0, 1)

    def paint(img, dist_px, rgb, alpha=1.0):
        cover = (0.5 - dist_px).clamp(0, 1)                     # anti-aliased coverage
        if not isinstance(alpha, float):
            alpha = alpha[:, None, None]
        cover = (cover * alpha)[:, None]
        return img * (1 - cover) + rgb[:, :, None, None] * cover

    # distractor strokes behind the shape
    s = p["strokes"]
    for j in range(s.shape[1]):
        d = _sd_segment(u, v, s[:, j, 0, None, None], s[:, j, 1, None, None],
                        s[:, j, 2, None, None], s[:, j, 3, None, None]) / px_size
        d = d - p["stroke_w"][:, j, None, None]
        alpha = p["stroke_alpha"][:, j] * (j < p["n_strokes"]).float()
        img = paint(img, d, p["stroke_rgb"][:, j], alpha)

    # the shape
    scale = p["scale"][:, None, None]
    lx = (u - p["cx"][:, None, None]) / scale
    ly = (v - p["cy"][:, None, None]) / scale
    lx, ly = _rotate(lx, ly, p["angle"][:, None, None])
    dist = torch.empty(n, size, size)
    for c in range(len(CLASSES)):
        idx = (p["y"] == c).nonzero().squeeze(1)
        if len(idx):
            dist[idx] = _class_sdf(c, lx[idx], ly[idx], p["shape_par"][idx, None, None])
    img = paint(img, dist * scale / px_size, p["fg"])

    # sometimes one stroke in front
    f = p["front_seg"]
    d = _sd_segment(u, v, f[:, 0, None, None], f[:, 1, None, None],
                    f[:, 2, None, None], f[:, 3, None, None]) / px_size - 0.6
    img = paint(img, d, p["front_rgb"], 0.7 * p["front"].float())

    # pixel noise
    g = torch.Generator().manual_seed(int(p["noise_seed"].item()))
    noise = torch.randn(_BLOCK, *img.shape[1:], generator=g)[:n]  # full block: prefix-stable
    noise = noise * p["noise_sigma"][:, None, None, None]
    return (img + noise).clamp(0, 1)


def _block_generator(seed: int, split: str, block: int) -> torch.Generator:
    key = ((int(seed) * 2 + _SPLIT_ID[split]) * 1_000_003 + block) % (2 ** 63)
    return torch.Generator().manual_seed(key)


def generate(n: int, *, seed: int = 0, split: str = "train", size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw images ``(n, 3, size, size)`` float32 in [0, 1] and labels ``(n,)`` int64.

    Deterministic from ``(seed, split)``; the first ``m`` of ``generate(n)`` equal
    ``generate(m)``.  Each aligned run of 10 images holds every class once.
    """
    xs, ys = [], []
    # The work is many small element-wise ops: one thread is as fast on an idle machine
    # and 10-40x faster on a busy one (intra-op threads spin-waiting for a core).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for block in range(-(-n // _BLOCK)):
            take = min(_BLOCK, n - block * _BLOCK)
            p = _draw_params(_block_generator(seed, split, block), _BLOCK)
            p = {k: (v[:take] if k != "noise_seed" else v) for k, v in p.items()}
            xs.append(_render(p, size))
            ys.append(p["y"])
    finally:
        torch.set_num_threads(threads)
    if not xs:
        return torch.zeros(0, 3, size, size), torch.zeros(0, dtype=torch.int64)
    return torch.cat(xs).float(), torch.cat(ys).long()


def load_shapes(*, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
                n_val: int = 0, size: int = 32) -> Splits:
    """The procedural ``shapes`` set: ``x`` float32 ``(N, 3, size, size)``, ``y`` int64.

    ``n_train`` (default 10000) images form the training pool, of which ``n_val`` are
    held out for validation (``len(train) == n_train - n_val``); ``n_test`` (default
    2000) come from an independent stream.  Each channel is standardised with the
    training pool's mean and std.  See the module docstring for classes and groups
    (:data:`GROUPS`, :func:`class_groups`).
    """
    why = f"shapes generates at most MAX_SAMPLES={MAX_SAMPLES} images, n_train + n_test"
    n_train = DEFAULT_N_TRAIN if n_train is None else check_count("n_train", n_train, low=1, high=MAX_SAMPLES, why=why)
    n_test = DEFAULT_N_TEST if n_test is None else check_count("n_test", n_test, low=0, high=MAX_SAMPLES - n_train, why=why)
    n_val = check_count("n_val", n_val, low=0, high=n_train - 1, why=f"held out of n_train={n_train}")
    size = check_count("size", size, low=8, high=MAX_SIZE, why="image side in pixels")
    x_tr, y_tr = generate(n_train, seed=seed, split="train", size=size)
    x_te, y_te = generate(n_test, seed=seed, split="test", size=size)
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
    train = DeviceData((x_tr - mean) / std, y_tr, name="shapes/train")
    test = DeviceData((x_te - mean) / std, y_te, name="shapes/test")
    train, val = split_off(train, n_val, seed)
    info = {"dataset": "shapes", "seed": int(seed), "n_train": n_train, "n_test": n_test,
            "n_val": n_val, "size": size, "generator_version": GENERATOR_VERSION,
            "standardise": "train-per-channel"}
    return Splits("shapes", train, val, test, list(CLASSES), info)
