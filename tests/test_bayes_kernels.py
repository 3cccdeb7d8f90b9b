"""The compiled kernels behind the per-row ArviZ groups: the normals of the predictive draws
are standard normal (moments, tails beyond the ziggurat's base, a KS test), independent
between draws, and the same for a seed whatever the number of threads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("numba")

from bayeshrink.bayes.kernels import kernels

N_DRAW, N_ROW = 200, 5_000  # 10^6 normals


@pytest.fixture(scope="module")
def normals():
    out = np.empty((N_DRAW, N_ROW))
    kernels()["normals"](np.uint64(20261208), out)
    return out


def test_normals_are_standard_normal(normals):
    z = normals.ravel()
    m = z.size
    assert abs(z.mean()) < 4 / np.sqrt(m)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / m)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # the ziggurat's tail (beyond R = 3.4426) is drawn by its own loop: its mass is right
    p = 2 * stats.norm.sf(3.442619855899)
    count = int((np.abs(z) > 3.442619855899).sum())
    assert abs(count - m * p) < 4 * np.sqrt(m * p)
    assert abs(stats.skew(z)) < 4 * np.sqrt(6 / m)
    assert abs(stats.kurtosis(z)) < 4 * np.sqrt(24 / m)


def test_draws_are_independent_streams(normals):
    # correlation between neighbouring draws (rows of the output) and along a row
    r_draws = np.corrcoef(normals[:-1].ravel(), normals[1:].ravel())[0, 1]
    r_rows = np.corrcoef(normals[:, :-1].ravel(), normals[:, 1:].ravel())[0, 1]
    assert abs(r_draws) < 4 / np.sqrt(normals.size)
    assert abs(r_rows) < 4 / np.sqrt(normals.size)


def test_the_same_seed_gives_the_same_draws_on_any_number_of_threads(normals):
    import numba

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = np.empty_like(normals)
        kernels()["normals"](np.uint64(20261208), one)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, normals)
    other = np.empty_like(normals)
    kernels()["normals"](np.uint64(20261209), other)
    assert not np.array_equal(other, normals)
