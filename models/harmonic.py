"""Harmonic fill: the smoothest completion of a hole, used as a floor and as the generator's start.

The harmonic fill u solves Laplace's equation inside the hole, with the known pixels as boundary
values (Dirichlet) and no flux through the image border (Neumann):

    for every hole pixel p:   sum over the 4-neighbours q of p inside the image of (u_p - u_q) = 0,

where u_q is the known value when q is known. In matrix form A u = b with A the graph Laplacian
restricted to the hole (symmetric positive definite when every connected part of the hole touches a
known pixel, as the gap does) and b the sum of the known neighbours. It is the minimum of the
Dirichlet energy sum |grad u|^2, i.e. the fill with the least variation: the strongest PSNR floor
among training-free fills on scenery (it interpolates colours from both known squares).

The hole's values are a linear function of the known pixels next to it (its boundary): u = v_boundary G,
with G = A^-1 P and P the boundary's contributions to b. When every image of a batch has the same hole, as the
gap task's fixed geometry gives, `harmonic_fill` factors A once (a sparse LU, `harmonic_operator`, cached per
hole and device) and then fills any batch with one matrix product: exact, and far cheaper than iterating every
step (docs/speed.md).
Otherwise (masks that differ within the batch, no SciPy, a hole too large for a dense G) it runs batched
conjugate gradients (Hestenes & Stiefel 1952), one 4-neighbour sum per iteration, started from a
coarse-to-fine "push-pull" interpolation (Gortler et al. 1996) so that few iterations are needed.
"""
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

# A dense G of at most this many entries (boundary x hole pixels; 2.3 M at 128^2 with the default gap, 18 MB in
# float64) is cached; larger holes are solved iteratively.
MAX_OPERATOR_ENTRIES = 2 ** 23
_OPERATORS = OrderedDict()  # (shape, hole bytes, device) -> (hole index, boundary index, G) or None; LRU
_OPERATOR_CACHE_SIZE = 8


def _neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> sum of each pixel's 4 neighbours inside the image (missing ones count 0).

    Shifted adds, not a 3x3 convolution: a single-channel conv2d is ~80x slower on CPU.
    """
    out = torch.zeros_like(x)
    out[..., 1:, :] += x[..., :-1, :]
    out[..., :-1, :] += x[..., 1:, :]
    out[..., :, 1:] += x[..., :, :-1]
    out[..., :, :-1] += x[..., :, 1:]
    return out


def push_pull_fill(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Smooth interpolation of `values` (N, C, H, W) from the pixels where known (N, 1, H, W) is 1.

    Push: average the known pixels down an image pyramid (weighted by how much is known) until
    every pixel of the coarsest level has data; pull: fill each level's unknown part from the
    upsampled coarser level. A cheap, smooth initial guess for the harmonic solve.
    """
    if known.min() > 0 or min(values.shape[-2:]) <= 1:
        return values
    if known.shape[-1] <= 2 or known.shape[-2] <= 2:  # coarsest level: the known mean everywhere
        mean = (values * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        return torch.where(known > 0, values, mean.expand_as(values))
    coarse_known = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse_values = F.avg_pool2d(values * known, 2, ceil_mode=True) / coarse_known.clamp_min(1e-12)
    coarse = push_pull_fill(coarse_values, (coarse_known > 0).to(known))
    up = F.interpolate(coarse, size=values.shape[-2:], mode="bilinear", align_corners=False)
    return known * values + (1.0 - known) * up


def harmonic_operator(hole: torch.Tensor):
    """(hole index (n_h,), boundary index (n_b,), G (n_b, n_h) float64), or None: the exact harmonic fill of one hole.

    hole (H, W) bool, True = hole. The boundary is the known pixels with a 4-neighbour in the hole; for values
    v (N, H*W), the fill of the hole is v[:, boundary] @ G, built by a sparse LU (SciPy; the lent GPUs' image has
    it too). None without SciPy, where G would be larger than MAX_OPERATOR_ENTRIES, or where A is singular (a hole
    with no known neighbour). Cached per hole and device; the tensors live on the hole's device, so that a GPU's
    step copies nothing.
    """
    hole_cpu = hole.cpu()
    key = (tuple(hole.shape), hole_cpu.numpy().tobytes(), str(hole.device))
    if key in _OPERATORS:
        _OPERATORS.move_to_end(key)
        return _OPERATORS[key]
    operator = _build_operator(hole_cpu)
    if operator is not None:
        operator = tuple(t.to(hole.device) for t in operator)
    _OPERATORS[key] = operator
    if len(_OPERATORS) > _OPERATOR_CACHE_SIZE:
        _OPERATORS.popitem(last=False)
    return operator


def _build_operator(hole_tensor: torch.Tensor):
    """harmonic_operator's tensors (on the CPU) for hole_tensor (H, W) bool on the CPU, by a sparse LU of the hole's
    Laplacian, or None (no SciPy, too large, singular)."""
    try:
        import scipy.sparse as sparse
        import scipy.sparse.linalg as sparse_linalg
    except ImportError:  # without SciPy the iterative solve does the same job
        return None
    hole = hole_tensor.numpy().astype(bool)
    h, w = hole.shape
    # The known pixels with a 4-neighbour in the hole.
    boundary = ~hole & (_neighbour_sum(hole_tensor[None, None].float())[0, 0] > 0).numpy()
    n_hole, n_boundary = int(hole.sum()), int(boundary.sum())
    index = -np.ones((h, w), dtype=np.int64)
    index[hole] = np.arange(n_hole)
    if n_hole == 0 or n_boundary == 0 or n_hole * n_boundary > MAX_OPERATOR_ENTRIES:
        return None
    boundary_index = -np.ones((h, w), dtype=np.int64)
    boundary_index[boundary] = np.arange(n_boundary)
    degree = np.zeros((h, w))
    rows, cols, rhs_rows, rhs_cols = [], [], [], []
    hole_ys, hole_xs = np.nonzero(hole)
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):  # each hole pixel's neighbour at (y + dy, x + dx)
        ys, xs = hole_ys, hole_xs
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        ys, xs, ny, nx = ys[inside], xs[inside], ny[inside], nx[inside]
        np.add.at(degree, (ys, xs), 1.0)
        to_hole = hole[ny, nx]
        rows.append(index[ys[to_hole], xs[to_hole]])
        cols.append(index[ny[to_hole], nx[to_hole]])
        rhs_rows.append(index[ys[~to_hole], xs[~to_hole]])
        rhs_cols.append(boundary_index[ny[~to_hole], nx[~to_hole]])
    diagonal = np.arange(n_hole)
    rows, cols = np.concatenate(rows + [diagonal]), np.concatenate(cols + [diagonal])
    values = np.concatenate([-np.ones(len(rows) - n_hole), degree[hole]])
    a = sparse.csc_matrix((values, (rows, cols)), shape=(n_hole, n_hole))
    p = np.zeros((n_hole, n_boundary))
    np.add.at(p, (np.concatenate(rhs_rows), np.concatenate(rhs_cols)), 1.0)
    try:
        green = sparse_linalg.splu(a).solve(p)  # (n_hole, n_boundary)
    except RuntimeError:  # singular: a part of the hole with no known neighbour
        return None
    if not np.isfinite(green).all():
        return None
    return (torch.from_numpy(np.flatnonzero(hole)), torch.from_numpy(np.flatnonzero(boundary)),
            torch.from_numpy(np.ascontiguousarray(green.T)))


def _fill_with_operator(values: torch.Tensor, operator) -> torch.Tensor:
    """values (N, 1, H, W) -> a copy with the hole filled by `operator` (harmonic_operator) from the boundary."""
    hole_index, boundary_index, green = operator  # on values' device (harmonic_operator caches per device)
    flat = values.flatten(1).clone()  # (N, H*W)
    flat[:, hole_index] = flat[:, boundary_index] @ green.to(values.dtype)
    return flat.view_as(values)


# Eager under torch.compile (main.py --compile): the convergence test of every iteration is data-dependent, a graph
# break per iteration, and no gradient flows through the solve.
@torch.compiler.disable
def harmonic_fill(masked: torch.Tensor, mask: torch.Tensor, max_iters: int = 2000, tol: float = 1e-5,
                  initial=None, use_operator: bool = True) -> torch.Tensor:
    """Solve Laplace's equation in the hole. masked (B, C, H, W), mask (B, 1, H, W) with 1 = hole.

    Returns (B, C, H, W): known pixels unchanged, hole = harmonic interpolation of the boundary.
    When the batch shares one hole, no `initial` is given and `use_operator`, the exact solution
    (`harmonic_operator`); otherwise conjugate gradients, which stop when every image's residual norm is
    below `tol` times its right-hand side's norm (or after `max_iters`). Computed in float32 (float64 if
    given float64), no grad.
    `initial` (B, C, H, W), if given, is the starting guess in the hole (default: push-pull).
    """
    dtype = torch.float64 if masked.dtype == torch.float64 else torch.float32
    with torch.no_grad(), torch.autocast(device_type=masked.device.type, enabled=False):
        b_, c_, h_, w_ = masked.shape
        shared_hole = mask.shape[0] == 1 or bool((mask[1:] > 0.5).eq(mask[:1] > 0.5).all())
        operator = harmonic_operator(mask[0, 0] > 0.5) if use_operator and initial is None and shared_hole else None
        if operator is not None:  # reads the boundary and overwrites the hole: no masking needed
            filled = _fill_with_operator(masked.to(dtype).reshape(b_ * c_, 1, h_, w_), operator)
            return filled.reshape(b_, c_, h_, w_).to(masked.dtype)
        hole = (mask > 0.5).to(dtype).expand(b_, c_, h_, w_).reshape(b_ * c_, 1, h_, w_)
        known = 1.0 - hole
        values = masked.to(dtype).reshape(b_ * c_, 1, h_, w_) * known
        degree = _neighbour_sum(torch.ones_like(hole))

        def apply_a(u):  # Laplacian restricted to the hole (u is zero outside it)
            return hole * (degree * u - _neighbour_sum(u))

        rhs = hole * _neighbour_sum(values)
        start = push_pull_fill(values, known) if initial is None else initial.to(dtype).reshape(b_ * c_, 1, h_, w_)
        u = hole * start
        r = rhs - apply_a(u)
        p = r.clone()
        rr = (r * r).sum(dim=(1, 2, 3), keepdim=True)
        stop = (tol * rhs.flatten(1).norm(dim=1)).clamp_min(1e-12).view(-1, 1, 1, 1) ** 2
        for _ in range(max_iters):
            if bool((rr <= stop).all()):
                break
            ap = apply_a(p)
            alpha = rr / (p * ap).sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-30)
            u = u + alpha * p
            r = r - alpha * ap
            rr_new = (r * r).sum(dim=(1, 2, 3), keepdim=True)
            p = r + (rr_new / rr.clamp_min(1e-30)) * p
            rr = rr_new
        filled = values + hole * u
    return filled.reshape(b_, c_, h_, w_).to(masked.dtype)


SMOOTHING_ITERS = 10


def coarse_harmonic_fill(masked: torch.Tensor, mask: torch.Tensor, max_side: int = 128, tol: float = 1e-3) -> torch.Tensor:
    """`harmonic_fill` solved on a grid of at most `max_side` pixels and upsampled into the hole.

    The cost of conjugate gradients grows faster than the pixel count (4x the pixels per iteration
    and ~2x the iterations across a twice wider hole): a 256^2 batch of 16 took ~12 s on one CPU
    core against 0.7 s at 128^2, more than the generator itself. The harmonic fill is smooth inside
    the hole, so the coarse solution, bilinearly upsampled, is close to the full one away from the
    known pixels (mean difference ~0.008 in the hole at 256^2, on the [-1, 1] scale); SMOOTHING_ITERS
    conjugate-gradient steps at full resolution then mend the thin layer next to the known pixels,
    where the fill follows their texture. Images of at most `max_side` pixels get the exact
    `harmonic_fill`. Coarse cells that are at least half known are known (the mean of their known
    pixels). masked (B, C, H, W), mask (B, 1, H, W), 1 = hole.
    """
    factor = max(masked.shape[-2:]) // max_side
    if factor <= 1:
        return harmonic_fill(masked, mask, tol=tol)
    with torch.no_grad():
        known = 1.0 - (mask > 0.5).to(masked.dtype)
        coarse_known = F.avg_pool2d(known, factor, ceil_mode=True)
        coarse = F.avg_pool2d(masked * known, factor, ceil_mode=True) / coarse_known.clamp_min(1e-12)
        coarse_hole = (coarse_known < 0.5).to(masked.dtype)
        solved = harmonic_fill(coarse * (1.0 - coarse_hole), coarse_hole, tol=tol)
        up = F.interpolate(solved, size=masked.shape[-2:], mode="bilinear", align_corners=False)
    return harmonic_fill(masked, mask, max_iters=SMOOTHING_ITERS, tol=tol, initial=up)
