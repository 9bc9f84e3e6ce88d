"""The mapping from this project's conventions to pty-chi's (docs/conventions.md, "The iterative arm").

Cheap checks of each convention against pty-chi's own functions, then the end-to-end pin: noise-free
data with the true probe reconstruct to amplitude SSIM >= 0.98, and deliberately wrong position
conventions do not (x and y swapped, x mirrored: SSIM far below; the half-pixel origin dropped: the
object comes back shifted by about half a pixel).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ptychi")

import torch  # noqa: E402

from ptycho_dist import physics  # noqa: E402
from ptycho_dist.evaluation import evaluate_reconstruction  # noqa: E402
from ptycho_dist.models.iterative import (  # noqa: E402
    OBJECT_PAD,
    from_ptychi_positions,
    ptychi_origin,
    ptychi_probe,
    to_ptychi_positions,
)
from ptycho_dist.models.iterative.engine import reconstruct  # noqa: E402
from ptycho_dist.stitching import StitchResult, stitch  # noqa: E402
from ptycho_dist.study.spec import IterativeSpec  # noqa: E402


def test_origin_is_half_pixel_below_the_centre() -> None:
    assert ptychi_origin((96, 80)).tolist() == [47.5, 39.5]
    assert ptychi_origin((97, 81)).tolist() == [47.5, 39.5]  # round(48.5) = 48 and round(40.5) = 40, half to even


def test_positions_round_trip_and_centre(rng: np.random.Generator) -> None:
    pos = rng.uniform(16, 48, size=(20, 2))
    y, x = to_ptychi_positions(pos, (64, 70))
    np.testing.assert_allclose(from_ptychi_positions(y, x, (64, 70)), pos, atol=1e-12)
    # the object's centre pixel boundary (W/2, H/2) is pty-chi's origin (0, 0), padding or not
    for pad in (0, OBJECT_PAD):
        y0, x0 = to_ptychi_positions(np.array([[35.0, 32.0]]), (64, 70), pad=pad)
        assert (y0[0], x0[0]) == (0.0, 0.0)


@pytest.mark.parametrize("shape", [(64, 64), (64, 70), (65, 71)])
def test_ptychi_cuts_our_patches_at_integer_positions(shape: tuple[int, int], rng: np.random.Generator) -> None:
    """pty-chi's integer patch extraction at the converted positions is this project's patch."""
    from ptychi.image_proc import extract_patches_integer

    n = 16
    obj = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    pos = np.stack([rng.integers(n // 2, shape[1] - n // 2, 12), rng.integers(n // 2, shape[0] - n // 2, 12)],
                   axis=1).astype(np.float64)
    y, x = to_ptychi_positions(pos, shape, pad=0)
    buffer_pos = torch.tensor(np.stack([y, x], 1)) + torch.tensor(ptychi_origin(shape))  # PlanarObject adds it
    theirs = extract_patches_integer(torch.from_numpy(obj), buffer_pos, (n, n)).numpy()
    np.testing.assert_array_equal(theirs, physics.extract_patches(obj, pos, n))


def test_probe_scale_makes_ptychi_intensity_our_counts(rng: np.random.Generator) -> None:
    """|fft2(P s/N O)|^2 (pty-chi: unnormalized FFT, then fft-shifted data) equals s^2 I."""
    n = 32
    obj = physics.lines_object((64, 64), n_lines=20, rng=rng)
    probe, _ = physics.normalize_probe(physics.disk_probe(n))
    pos = np.array([[32.0, 32.0], [20.0, 40.0]])
    sim = physics.simulate_patterns(obj, probe, pos, nphotons=1e6, noise=False, rng=rng)
    psi = ptychi_probe(probe, sim.scale)[None] * physics.extract_patches(obj, pos, n)
    theirs = np.abs(np.fft.fft2(psi)) ** 2
    np.testing.assert_allclose(theirs, np.fft.fftshift(sim.counts, axes=(-2, -1)), rtol=2e-4,
                               atol=1e-6 * float(sim.counts.max()))


def test_subpixel_model_matches_fourier_not_bilinear_simulation(rng: np.random.Generator) -> None:
    """pty-chi models a sub-pixel position as the patch at the rounded position times the probe
    Fourier-shifted by the residual. Our Fourier-interpolated data match that model closely;
    bilinear data (the object blurred by the interpolation) do not: an iterative study of a
    sub-pixel scan simulates with data.interpolation = "fourier"."""
    from ptychi.image_proc import fourier_shift

    n = 32
    obj = physics.lines_object((96, 96), n_lines=40, rng=rng)
    probe, _ = physics.normalize_probe(physics.disk_probe(n))
    pos = rng.uniform(30, 66, size=(16, 2))
    y, x = to_ptychi_positions(pos, obj.shape, pad=0)
    snapped = np.stack([np.round(x), np.round(y)], 1) + np.array([48.0, 48.0])  # back to object pixels
    residual = torch.tensor(np.stack([y - np.round(y), x - np.round(x)], 1))
    shifted = fourier_shift(torch.from_numpy(np.repeat(probe[None], len(pos), 0)), residual).numpy()
    model = np.abs(np.fft.fft2(shifted * physics.extract_patches(obj, snapped, n))) ** 2
    errors = {}
    for interp in ("fourier", "bilinear"):
        data = np.abs(np.fft.fft2(probe[None] * physics.extract_patches(obj, pos, n, interpolation=interp))) ** 2
        errors[interp] = float(np.linalg.norm(model - data) / np.linalg.norm(data))
    assert errors["bilinear"] > 5 * errors["fourier"], errors


def _score(obj: np.ndarray, estimate: np.ndarray, positions: np.ndarray, n: int) -> tuple[float, float, float]:
    """Amplitude SSIM after registration, and the registered shift (x, y) in pixels."""
    cover = stitch(np.ones((len(positions), n, n), np.complex64), positions, crop=n // 2, frame="object",
                   shape=obj.shape)
    canvas = np.where(cover.coverage > 0, estimate, np.nan).astype(np.complex64)
    result = evaluate_reconstruction(StitchResult(canvas=canvas, coverage=cover.coverage, origin=cover.origin,
                                                  crop=cover.crop, frame="object"), obj, border=2)
    ssim = next(r["ssim"] for r in result.metrics_rows if r["target"] == "stitched" and r["channel"] == "amplitude")
    return float(ssim), float(result.bias_row["shift_x"]), float(result.bias_row["shift_y"])


@pytest.fixture(scope="module")
def noise_free() -> dict[str, object]:
    """64 x 64 lines object, N = 16 disk probe, 13 x 13 grid (step 4), noise-free counts."""
    rng = np.random.default_rng(0)
    obj = physics.lines_object((64, 64), n_lines=32, rng=rng)
    probe, _ = physics.normalize_probe(physics.disk_probe(16))
    pos = physics.grid_scan(obj.shape, 16, step=4.0)
    sim = physics.simulate_patterns(obj, probe, pos, nphotons=1e9, noise=False, rng=rng)
    return {"obj": obj, "probe": probe, "pos": pos, "sim": sim}


def _wrong(kind: str, pos: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if kind == "swap_xy":
        return pos[:, ::-1].copy()
    if kind == "mirror_x":
        return np.stack([shape[1] - pos[:, 0], pos[:, 1]], 1)
    return pos - 0.5  # "no_half_pixel": pty-chi's origin taken as the centre pixel itself


@pytest.mark.parametrize("convention", ["ours", "swap_xy", "mirror_x", "no_half_pixel"])
def test_true_probe_noise_free_reconstruction(noise_free: dict[str, object], convention: str) -> None:
    """The pin of the whole mapping: SSIM >= 0.98 with no residual shift; a flipped or mirrored
    position convention destroys the reconstruction, a dropped half-pixel origin shifts it."""
    obj, probe, pos, sim = (noise_free[k] for k in ("obj", "probe", "pos", "sim"))
    assert isinstance(obj, np.ndarray) and isinstance(pos, np.ndarray) and isinstance(probe, np.ndarray)
    given = pos if convention == "ours" else _wrong(convention, pos, obj.shape)
    spec = IterativeSpec(algorithm="lsqml", iterations=50)
    result = reconstruct(sim.counts, given, probe, object_shape=obj.shape, scale=sim.scale,  # type: ignore[attr-defined]
                         spec=spec, seed=0)
    ssim, dx, dy = _score(obj, result.object, pos, 16)
    if convention == "ours":
        assert ssim >= 0.98 and abs(dx) <= 0.05 and abs(dy) <= 0.05
        assert result.history[-1]["data_error"] < 1e-3 * result.history[0]["data_error"]
    elif convention == "no_half_pixel":
        assert abs(dx) >= 0.3 and abs(dy) >= 0.3, f"a half-pixel origin error left a shift of only ({dx}, {dy})"
    else:
        assert ssim < 0.9, f"{convention}: a wrong position convention reached SSIM {ssim:.3f}"
