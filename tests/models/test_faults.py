"""The model side of the fault switches (ptycho_dist.models.faults) and the object's units."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptycho_dist.errors import ModelError
from ptycho_dist.models import normalization_factor, object_in_data_units
from ptycho_dist.models.faults import effective_object_big, inference_scales, model_probe, probe_energy_ratio
from ptycho_dist.physics import disk_probe, normalize_probe
from ptycho_dist.physics.probes import probe_mask


@pytest.fixture
def probe_and_factor() -> tuple[np.ndarray, np.ndarray, float]:
    raw = disk_probe(32)
    probe, factor = normalize_probe(raw, probe_scale=4.0)
    return raw, probe, factor


def test_model_probe_data_is_the_data_probe(probe_and_factor):
    _, probe, factor = probe_and_factor
    got = model_probe(probe, probe_factor=factor, kind="data")
    assert got.dtype == np.complex64 and got is not probe
    np.testing.assert_array_equal(got, probe)
    assert probe_energy_ratio(got, probe) == 1.0


def test_model_probe_unnormalized_undoes_the_normalization(probe_and_factor):
    raw, probe, factor = probe_and_factor
    got = model_probe(probe, probe_factor=factor, kind="unnormalized")
    np.testing.assert_allclose(got, raw, rtol=1e-6, atol=1e-7)
    assert probe_energy_ratio(got, probe) == pytest.approx(1 / factor**2, rel=1e-6)
    # PHYSICS.md: P = P_raw / (probe_scale * mean |mask * P_raw|), the mean over all N^2 pixels
    assert factor == pytest.approx(32**2 / (4.0 * float(np.abs(raw[probe_mask(32)]).sum())), rel=1e-6)


def test_model_probe_l2_has_unit_energy(probe_and_factor):
    _, probe, factor = probe_and_factor
    got = model_probe(probe, probe_factor=factor, kind="l2")
    assert float(np.sum(np.abs(got.astype(np.complex128)) ** 2)) == pytest.approx(1.0, rel=1e-6)
    energy = float(np.sum(np.abs(probe.astype(np.complex128)) ** 2))
    assert probe_energy_ratio(got, probe) == pytest.approx(1 / energy, rel=1e-6)
    np.testing.assert_allclose(got * math.sqrt(energy), probe, rtol=1e-5, atol=1e-6)  # same shape, other scale


def test_model_probe_errors(probe_and_factor):
    _, probe, factor = probe_and_factor
    with pytest.raises(ModelError, match="must be one of"):
        model_probe(probe, probe_factor=factor, kind="L2")
    with pytest.raises(ModelError, match="probe factor > 0"):
        model_probe(probe, probe_factor=0.0, kind="unnormalized")
    with pytest.raises(ModelError, match="zero energy"):
        model_probe(np.zeros((32, 32), np.complex64), probe_factor=1.0, kind="l2")
    with pytest.raises(ModelError, match="shapes differ"):
        probe_energy_ratio(probe, probe[:16, :16])


@pytest.mark.parametrize("big, off, expected", [(True, False, True), (True, True, False), (False, False, False),
                                                 (False, True, False)])
def test_effective_object_big(big, off, expected):
    assert effective_object_big(big, object_big_off=off) is expected


def test_inference_scales_keep_the_bundle_unless_asked(rng):
    amplitudes = rng.random((5, 4, 32, 32))
    assert inference_scales(norm_factor=2.5, log_scale=7.0, initial_log_scale=6.0, amplitudes=amplitudes,
                            ignore_learned=False) == (2.5, 7.0)
    norm, log_scale = inference_scales(norm_factor=2.5, log_scale=7.0, initial_log_scale=6.0,
                                       amplitudes=amplitudes, ignore_learned=True)
    assert log_scale == 6.0 and norm == pytest.approx(normalization_factor(amplitudes))
    assert inference_scales(norm_factor=2.5, log_scale=7.0, initial_log_scale=6.0, amplitudes=None,
                            ignore_learned=False) == (2.5, 7.0)
    with pytest.raises(ModelError, match="amplitudes"):
        inference_scales(norm_factor=2.5, log_scale=7.0, initial_log_scale=6.0, amplitudes=None,
                         ignore_learned=True)


def test_object_in_data_units_applies_the_learned_scale(rng):
    patches = (rng.random((3, 1, 8, 8)) * np.exp(1j * rng.random((3, 1, 8, 8)))).astype(np.complex64)
    same = object_in_data_units(patches, log_scale=math.log(250.0), dose_scale=250.0)
    np.testing.assert_allclose(same, patches, rtol=1e-6)
    bright = object_in_data_units(patches, log_scale=math.log(3 * 250.0), dose_scale=250.0)
    assert bright.dtype == np.complex64 and bright.shape == patches.shape
    np.testing.assert_allclose(bright, 3 * patches, rtol=1e-6)
    np.testing.assert_allclose(np.angle(bright), np.angle(patches), atol=1e-6)  # the phase is untouched
    with pytest.raises(ModelError, match="dose scale > 0"):
        object_in_data_units(patches, log_scale=1.0, dose_scale=0.0)
    with pytest.raises(ModelError, match="overflows"):
        object_in_data_units(patches, log_scale=1e4, dose_scale=1.0)
