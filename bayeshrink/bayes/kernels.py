r"""Compiled kernels for the per-row ArviZ groups: the normal log-likelihood and predictive
draws of every (draw, row), fused, in parallel over draws.

Why a random-number generator of its own: a posterior predictive group holds draws x rows
normal variates (10^8 for 1,000 draws of 100,000 rows). numpy's ``Generator.standard_normal``
makes them one thread at a time at 5-10 ns each, which costs more than the sampler's own run
on a marginalized model (a few gradient steps per draw, O(groups) each). Here every draw
(a row of the output) gets its own stream, a SplitMix64 sequence (Steele, Lea & Flood 2014;
it passes BigCrush) started from a hash of the run's seed and the draw's position, and the
normals come from Doornik's (2005) ziggurat (ZIGNOR, 128 blocks, independent bits for the
block and the abscissa). The streams do not depend on how the draws are split between
threads, so a seed gives the same draws on any machine with any number of threads.

Every kernel writes into arrays made by the caller; nothing of size draws x rows is
allocated here.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kernels", "ziggurat_tables"]

try:
    import numba
except ImportError:  # pragma: no cover - numba comes with PyMC's numba backend
    numba = None

_C = 128
_R = 3.442619855899
_V = 9.91256303526217e-3


def ziggurat_tables() -> tuple[np.ndarray, np.ndarray]:
    """(x, r): the block edges x[0..128] and ratios r[i] = x[i + 1] / x[i] of ZIGNOR."""
    x = np.empty(_C + 1)
    f = math.exp(-0.5 * _R * _R)
    x[0] = _V / f
    x[1] = _R
    x[_C] = 0.0
    for i in range(2, _C):
        x[i] = math.sqrt(-2.0 * math.log(_V / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1]


_X, _RATIO = ziggurat_tables()
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11, _LOW7 = np.uint64(11), np.uint64(0x7F)
_UNIT = 1.0 / 9007199254740992.0  # 2^-53


if numba is not None:
    _jit = numba.njit
    _prange = numba.prange
else:  # pragma: no cover - the decorators do nothing; kernels() then returns None

    def _jit(*args, **kwargs):
        return lambda f: f

    _prange = range


@_jit(inline="always", cache=True)
def mix(z):  # pragma: no cover - compiled; SplitMix64's finaliser
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@_jit(inline="always", cache=True)
def start(seed, d):  # pragma: no cover - compiled; the stream of draw d
    return mix(seed ^ mix(np.uint64(d) * _GAMMA + _GAMMA))


@_jit(inline="always", cache=True)
def uniform(state):  # pragma: no cover - compiled; (0, 1), open at both ends
    state = state + _GAMMA
    return state, ((mix(state) >> _S11) + 0.5) * _UNIT


@_jit(inline="always", cache=True)
def normal(state, X, ratio):  # pragma: no cover - compiled; ZIGNOR
    while True:
        state = state + _GAMMA
        r = mix(state)
        u = 2.0 * (((r >> _S11) + 0.5) * _UNIT) - 1.0
        i = np.int64(r & _LOW7)
        if abs(u) < ratio[i]:
            return state, u * X[i]
        if i == 0:  # the tail beyond R
            while True:
                state, a = uniform(state)
                state, b = uniform(state)
                t = math.log(a) / _R
                if -2.0 * math.log(b) >= t * t:
                    break
            return state, (t - _R) if u < 0.0 else (_R - t)
        x = u * X[i]
        f0 = math.exp(-0.5 * (X[i] * X[i] - x * x))
        f1 = math.exp(-0.5 * (X[i + 1] * X[i + 1] - x * x))
        state, v = uniform(state)
        if f1 + v * (f0 - f1) < 1.0:
            return state, x


@_jit(parallel=True, cache=True)
def oneway(theta, codes, y, sigma, seed, first, ll, pp, X, ratio):  # pragma: no cover
    # ll[d, i] = log N(y_i | theta[d, g_i], sigma_d^2); pp[d, i] = theta[d, g_i] + sigma_d e
    n_draw, n = theta.shape[0], codes.shape[0]
    do_ll, do_pp = ll.shape[0] > 0, pp.shape[0] > 0
    for d in _prange(n_draw):
        s = sigma[d]
        if do_ll:
            inv, shift = 1.0 / s, math.log(s) + _HALF_LOG_2PI
            for i in range(n):
                r = (y[i] - theta[d, codes[i]]) * inv
                ll[d, i] = -0.5 * r * r - shift
        if do_pp:
            state = start(seed, first + d)
            for i in range(n):
                state, e = normal(state, X, ratio)
                pp[d, i] = theta[d, codes[i]] + s * e


@_jit(parallel=True, cache=True)
def rows(mean, y, sigma, seed, first, ll, pp, X, ratio):  # pragma: no cover - compiled
    # the same from a (draw, row) mean
    n_draw, n = mean.shape
    do_ll, do_pp = ll.shape[0] > 0, pp.shape[0] > 0
    for d in _prange(n_draw):
        s = sigma[d]
        if do_ll:
            inv, shift = 1.0 / s, math.log(s) + _HALF_LOG_2PI
            for i in range(n):
                r = (y[i] - mean[d, i]) * inv
                ll[d, i] = -0.5 * r * r - shift
        if do_pp:
            state = start(seed, first + d)
            for i in range(n):
                state, e = normal(state, X, ratio)
                pp[d, i] = mean[d, i] + s * e


@_jit(parallel=True, cache=True)
def normals(seed, out, X, ratio):  # pragma: no cover - compiled; out[d, i] ~ N(0, 1)
    for d in _prange(out.shape[0]):
        state = start(seed, d)
        for i in range(out.shape[1]):
            state, e = normal(state, X, ratio)
            out[d, i] = e


_CACHE: list = []


def kernels():
    """The compiled kernels (numba), made once, with the ziggurat's tables bound:
    ``oneway(theta, codes, y, sigma, seed, first, ll, pp)``, ``rows(mean, y, sigma, seed,
    first, ll, pp)`` and ``normals(seed, out)``. ``seed`` is a ``np.uint64``, ``first`` the
    position of the first draw (its stream); an empty (0, 0) ``ll`` or ``pp`` is skipped.
    None where numba is missing (the callers then use numpy)."""
    if not _CACHE:
        if numba is None:  # pragma: no cover
            _CACHE.append(None)
        else:
            k = {"oneway": oneway, "rows": rows, "normals": normals}
            _CACHE.append(
                {name: (lambda f: lambda *args: f(*args, _X, _RATIO))(fn) for name, fn in k.items()}
            )
    return _CACHE[0]
