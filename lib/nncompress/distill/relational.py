"""Relation-based distillation: RKD (Park et al. 2019) and similarity-preserving KD
(Tung & Mori 2019).  Instead of matching what each sample's features *are*, the student
matches how the samples of a batch *relate* to each other.

Conventions:

* Features of any shape are flattened per sample to ``(N, D)``; the teacher is detached.
* **RKD distance** (Park et al. 2019, eq. 4-5): ``psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu``
  with ``mu`` the mean distance over the N(N-1) ordered pairs ``i != j``; the loss is
  the Huber (smooth-L1, delta = 1) loss between student and teacher potentials, averaged
  over those pairs.  (RepDistiller averages over all N^2 entries including the zero
  diagonal, i.e. (N-1)/N times our value.)  Distances use ``sqrt(max(d^2, eps))`` so that
  duplicate rows (distance 0) give finite gradients, not NaN.
* **RKD angle** (eq. 6-7): ``psi_A(t_i, t_j, t_k) = cos angle t_i t_j t_k = <e_ij, e_kj>``
  with ``e_ij = (t_i - t_j) / ||t_i - t_j||``; Huber loss averaged over the N(N-1)(N-2)
  ordered triplets of distinct indices (RepDistiller: over all N^3, degenerate ones
  included).  A zero difference (duplicate rows) gives a zero unit vector.  RKD is applied
  to a low-dimensional embedding (the pooled penultimate features, as in the paper and
  RepDistiller), so the cost is the N^3 cosines, not D: they come from batched matrix
  products and the loss's gradient is written out (:class:`_AngleHuberSum`), about half
  the time of plain autograd through an N^3 mask.
* ``rkd_loss = w_dist * distance + w_angle * angle`` with the paper's weights 25 and 50.
* **SP** (Tung & Mori 2019, eq. 2-4): ``G = F F^T`` over the batch (b x b), each row
  L2-normalised; ``L = ||G_T - G_S||_F^2 / b^2``.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

_EPS = 1e-12


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2:
        raise ValueError(f"expected a batch of features (N, ...), got shape {tuple(x.shape)}")
    return x.flatten(1)


def pairwise_distances(emb: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Euclidean distance matrix ``(N, N)`` of the rows of ``emb``; zero diagonal,
    ``sqrt(max(d^2, eps))`` elsewhere (finite gradients for duplicate rows)."""
    e = _flat(emb)
    sq = (e.unsqueeze(0) - e.unsqueeze(1)).pow(2).sum(-1)
    d = sq.clamp_min(eps).sqrt()
    off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d * off


def rkd_distance_potential(emb: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """``psi_D``: pairwise distances divided by their mean over pairs ``i != j`` (Park et al. eq. 4)."""
    n = len(emb)
    if n < 2:
        raise ValueError(f"RKD needs a batch of at least 2 samples, got {n}")
    d = pairwise_distances(emb, eps)
    mu = d.sum() / (n * (n - 1))
    return d / mu.clamp_min(eps)


def rkd_distance_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Distance-wise RKD loss (Park et al. 2019, eq. 5): Huber between ``psi_D`` of student
    and teacher, averaged over the ordered pairs ``i != j``.  Invariant to scaling either set."""
    n = len(student_emb)
    with torch.no_grad():
        t = rkd_distance_potential(teacher_emb.detach())
    s = rkd_distance_potential(student_emb)
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return F.smooth_l1_loss(s[off], t[off], reduction="mean")


def rkd_angle_potential(emb: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """``psi_A[i, j, k] = <e_ij, e_kj>`` with ``e_ij`` the unit vector from ``t_j`` to ``t_i``
    (Park et al. eq. 6); shape ``(N, N, N)`` indexed ``[i, j, k]`` (``j`` is the vertex)."""
    return _angle_by_vertex(_flat(emb), eps).permute(1, 0, 2)


def _unit_differences(e: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """``unit[j, i] = e_ij = (e_i - e_j) / ||e_i - e_j||``, shape ``(N, N, D)`` (vertex first);
    the norm is floored at ``sqrt(eps)``, so a zero difference (``i == j``, duplicate rows)
    gives the zero vector and finite gradients."""
    diff = e.unsqueeze(0) - e.unsqueeze(1)           # diff[j, i] = e_i - e_j
    return diff / torch.linalg.vector_norm(diff, dim=-1, keepdim=True).clamp_min(eps ** 0.5)


def _angle_by_vertex(e: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """``cos[j, i, k] = <e_ij, e_kj>`` as one batched matrix product (vertex first)."""
    unit = _unit_differences(e, eps)
    return torch.bmm(unit, unit.transpose(1, 2))


class _AngleHuberSum(torch.autograd.Function):
    """``sum_{j,i,k} Huber(s[j, i, k] - t[j, i, k])`` with the cosines ``s_j = u_j u_j^T`` of the
    student's unit differences ``u`` ``(N, N, D)`` and ``t_j = v_j v_j^T`` of the teacher's
    ``v`` (a constant).  The gradient is written out: ``c = dL/ds = clamp(s - t, -1, 1)``
    (the Huber derivative, delta = 1) and, as ``s_j`` and ``c_j`` are symmetric in
    ``(i, k)``, ``dL/du_j = 2 c_j u_j``.  Only ``c`` (``N^3`` numbers) is kept for the
    backward pass; autograd through ``bmm`` + ``smooth_l1_loss`` + an ``N^3`` mask keeps
    several such tensors and makes about three times the passes over them."""

    @staticmethod
    def forward(ctx, unit: torch.Tensor, teacher_unit: torch.Tensor) -> torch.Tensor:
        d = torch.bmm(unit, unit.transpose(1, 2))                   # student cosines s[j, i, k]
        t = torch.bmm(teacher_unit, teacher_unit.transpose(1, 2))   # teacher cosines
        # i == k: s and t are both ||u_ji||^2 (1, or 0 for a zero difference); copying the
        # student's value into t makes these degenerate terms and their gradients exactly 0
        t.diagonal(dim1=1, dim2=2).copy_(d.diagonal(dim1=1, dim2=2))
        d.sub_(t)                                                   # s - t
        c = torch.clamp(d, -1.0, 1.0, out=t)                        # Huber'(s - t), in t's buffer
        flat_c, flat_d = c.view(-1), d.view(-1)
        loss = torch.dot(flat_c, flat_d) - 0.5 * torch.dot(flat_c, flat_c)  # Huber(x) = c (x - c/2)
        ctx.save_for_backward(unit, c)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        unit, c = ctx.saved_tensors
        return torch.bmm(c, unit).mul_(2 * grad), None


def rkd_angle_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Angle-wise RKD loss (Park et al. 2019, eq. 7): Huber between the cosines of the
    angles ``t_i t_j t_k`` of student and teacher, averaged over triplets of distinct indices.

    Exact, without an ``N^3`` mask: the degenerate triplets ``i == j`` or ``k == j`` have a
    zero unit vector, so both cosines are exactly 0 and so are their Huber term and
    gradient; for ``i == k`` the teacher's cosine is set to the student's (both are
    ``||e_ij||^2``), which makes that term and its gradient exactly 0 too.  Cost per call:
    ``O(N^2 D)`` for the unit vectors, ``O(N^3 D)`` for the cosines (batched matrix
    products, the teacher's ``D`` dominates) and five passes over ``N^3`` numbers.
    Computed in (at least) float32 with autocast off: bf16 cosines are too coarse for a
    Huber loss on their differences.
    """
    n = len(student_emb)
    if n < 3:
        raise ValueError(f"the RKD angle loss needs a batch of at least 3 samples, got {n}")
    dtype = torch.promote_types(student_emb.dtype, torch.float32)
    with _autocast_off(student_emb.device):
        with torch.no_grad():
            teacher_unit = _unit_differences(_flat(teacher_emb.detach()).to(dtype))
        unit = _unit_differences(_flat(student_emb).to(dtype))
        total = _AngleHuberSum.apply(unit, teacher_unit)
    return total / (n * (n - 1) * (n - 2))


def _autocast_off(device: torch.device):
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def rkd_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, w_dist: float = 25.0,
             w_angle: float = 50.0) -> torch.Tensor:
    """RKD-DA (Park et al. 2019, eq. 8 with the paper's weights): ``w_dist * L_D + w_angle * L_A``.
    A zero weight skips that term."""
    total = student_emb.new_zeros(())
    if w_dist:
        total = total + w_dist * rkd_distance_loss(student_emb, teacher_emb)
    if w_angle:
        total = total + w_angle * rkd_angle_loss(student_emb, teacher_emb)
    return total


def similarity_matrix(feat: torch.Tensor) -> torch.Tensor:
    """Tung & Mori 2019, eq. 2-3: ``G = F F^T`` over the batch, rows L2-normalised (b x b)."""
    f = _flat(feat)
    return F.normalize(f @ f.t(), p=2, dim=1)


def sp_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving KD loss (Tung & Mori 2019, eq. 4): ``||G_T - G_S||_F^2 / b^2``.

    Student and teacher may have any (different) feature shapes: only the b x b matrices
    are compared.  Unchanged when features are permuted along channels."""
    b = len(student_feat)
    if len(teacher_feat) != b:
        raise ValueError(f"sp_loss: batch sizes differ ({b} vs {len(teacher_feat)})")
    gs = similarity_matrix(student_feat)
    gt = similarity_matrix(teacher_feat.detach())
    return (gt - gs).pow(2).sum() / (b * b)
