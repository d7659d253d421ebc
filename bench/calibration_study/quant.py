"""Scalar quantizers for the study: Gaussian Lloyd-Max codebooks (computed here), bit allocation."""
import numpy as np
from math import erf, sqrt, pi, exp

def _phi(x):
    x = np.where(np.isfinite(x), x, 1e3)
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
def _Phi(x): return 0.5 * (1 + np.vectorize(erf)(x / np.sqrt(2)))

def lloyd_max_gauss(b, iters=3000):
    """Centroids of the b-bit MSE-optimal quantizer of N(0,1) (Lloyd iteration with exact Gaussian integrals)."""
    n = 2 ** b
    g = np.linspace(-9, 9, 200001); cdf = _Phi(g)
    c = np.sqrt(3.0) * np.interp((np.arange(n) + 0.5) / n, cdf, g)  # companding init (density^(1/3))
    for _ in range(iters):
        t = np.concatenate([[-np.inf], 0.5 * (c[1:] + c[:-1]), [np.inf]])
        P = _Phi(t); pdf = _phi(t)
        mass = P[1:] - P[:-1]
        newc = np.where(mass > 1e-300, (pdf[:-1] - pdf[1:]) / np.maximum(mass, 1e-300), c)
        if np.max(np.abs(newc - c)) < 1e-12: c = newc; break
        c = newc
    x = np.linspace(-12, 12, 2400001); p = _phi(x) * (x[1] - x[0])
    t = 0.5 * (c[1:] + c[:-1])
    return c, float((((x - c[np.searchsorted(t, x)]) ** 2) * p).sum())

_CB = {}
def codebook(b):
    if b not in _CB:
        _CB[b] = lloyd_max_gauss(b) if b > 0 else (np.zeros(1), 1.0)
    return _CB[b]

def quantize_lm(z, b):
    """z: array, quantize with unit-Gaussian Lloyd-Max b-bit codebook; returns (idx, recon)."""
    if b == 0:
        return np.zeros(z.shape, np.int32), np.zeros_like(z)
    c, _ = codebook(b)
    t = 0.5 * (c[1:] + c[:-1])
    idx = np.searchsorted(t, z, side="right")
    return idx, c[idx]

def uniform_step_gauss(b):
    """MSE-optimal step of a 2^b-level midrise uniform quantizer for N(0,1) (grid search)."""
    x = np.linspace(-10, 10, 400001); p = _phi(x); p /= p.sum()
    best = None
    for s in np.linspace(0.01, 2.5, 2000):
        n = 2 ** b
        q = np.clip(np.floor(x / s), -n // 2, n // 2 - 1) + 0.5
        e = ((x - q * s) ** 2 * p).sum()
        if best is None or e < best[0]: best = (e, s)
    return best[1], best[0]

def allocate(var_w, total_bits, dist=None, bmax=8):
    """Greedy integer bit allocation: minimize sum_k var_w[k] * dist[b_k] with sum b_k <= total_bits.
    var_w = (weight x variance) per component; dist[b] = normalized distortion of b bits (convex)."""
    if dist is None:
        dist = [codebook(b)[1] for b in range(bmax + 1)]
    dist = np.asarray(dist)
    K = len(var_w); b = np.zeros(K, int); used = 0
    import heapq
    h = [(-(var_w[k] * (dist[0] - dist[1])), k) for k in range(K)]
    heapq.heapify(h)
    while h and used < total_bits:
        g, k = heapq.heappop(h)
        b[k] += 1; used += 1
        if b[k] < bmax:
            heapq.heappush(h, (-(var_w[k] * (dist[b[k]] - dist[b[k] + 1])), k))
    return b

if __name__ == "__main__":
    for b in range(1, 9):
        c, e = codebook(b); print(b, "LM mse %.4g" % e, "uniform", uniform_step_gauss(b) if b <= 6 else "")
