"""models/mass_floor.py, the model card's E floor: ~0 when pt and eta fix the mass, the mass spread when not."""
from __future__ import annotations

import importlib.util

import numpy as np

from conftest import REPO

spec = importlib.util.spec_from_file_location("mass_floor", REPO / "models" / "mass_floor.py")
mass_floor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mass_floor)


def _frame(pt, eta, m):
    p = pt * np.cosh(eta)
    return np.column_stack([np.sqrt(p * p + m * m), pt, eta, np.zeros_like(pt)])


def test_floor_is_zero_for_massless_jets_and_small_when_pt_fixes_the_mass():
    rng = np.random.default_rng(0)
    n = 100_000
    pt, eta = rng.uniform(10, 100, n), rng.uniform(-2, 2, n)
    _, r0 = mass_floor.mass_floor(_frame(pt, eta, np.zeros(n)), 30)
    assert np.abs(r0).max() < 1e-12
    _, r_fixed = mass_floor.mass_floor(_frame(pt, eta, 0.15 * pt), 30)
    _, r_random = mass_floor.mass_floor(_frame(pt, eta, rng.uniform(0, 0.3, n) * pt), 30)
    assert r_fixed.std() < 0.1 * r_random.std()


def test_floor_is_the_spread_of_an_unpredictable_mass():
    rng = np.random.default_rng(1)
    n = 100_000
    pt, eta = np.full(n, 20.0), np.zeros(n)
    m = rng.uniform(0, 6, n)
    t0, r = mass_floor.mass_floor(_frame(pt, eta, m), mass_floor.grid_size(n))
    e_true = np.sqrt(400 + m * m)
    # one cell: the floor is E relative to its mean-t0 prediction, i.e. the spread of t0
    expected = np.expm1(t0 - t0.mean())
    np.testing.assert_allclose(r, expected, rtol=1e-9, atol=1e-12)
    assert 0.8 * (e_true / e_true.mean()).std() < r.std() < 1.2 * (e_true / e_true.mean()).std()
