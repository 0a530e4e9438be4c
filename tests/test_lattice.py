"""Box dilation of the lattice (gpusim.model.lattice.dilate) against its definition."""

import itertools

import numpy as np
import pytest

from gpusim.model.lattice import dilate


def _brute(mask: np.ndarray, radius: int) -> np.ndarray:
    """True where some True voxel of the same batch entry lies within Chebyshev distance
    ``radius`` (z distance 0 only when Z = 1, where there is no other plane anyway)."""
    out = np.zeros_like(mask)
    *lead, Z, Y, X = mask.shape
    for idx in itertools.product(*(range(n) for n in lead)):
        pts = np.argwhere(mask[idx])
        for z, y, x in itertools.product(range(Z), range(Y), range(X)):
            out[idx + (z, y, x)] = bool(len(pts)) and bool(
                (np.abs(pts - (z, y, x)).max(axis=1) <= radius).any())
    return out


@pytest.mark.parametrize("shape", [(1, 7, 6), (4, 5, 3), (2, 1, 9, 8), (2, 3, 4, 5)])
@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_dilate_is_the_chebyshev_neighbourhood(shape, radius):
    mask = np.random.default_rng(len(shape) * 10 + radius).random(shape) < 0.08
    np.testing.assert_array_equal(dilate(mask, radius), _brute(mask, radius))
