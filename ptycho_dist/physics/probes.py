"""Illumination probes, their normalization and statistics (PHYSICS.md "Objects, probes, scans").

A probe is complex64 (N, N), N a power of two, centred on pixel (N//2, N//2): every radius below is
measured from that pixel, ``r = hypot(row - N//2, col - N//2)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import as_finite_array, check_positive, check_power_of_two

__all__ = [
    "radius_map",
    "probe_mask",
    "disk_probe",
    "gaussian_probe",
    "zone_plate_probe",
    "NOLL_LOW_ORDER",
    "zernike",
    "rotate_180",
    "rotation_asymmetry",
    "aberrated_probe",
    "probe_from_array",
    "normalize_probe",
    "probe_statistics",
    "perturbed_probe",
    "probe_relative_error",
    "DEFAULT_PROBE_SCALE",
]

#: default ``probe_scale`` of the normalization (PHYSICS.md)
DEFAULT_PROBE_SCALE = 4.0


def radius_map(n: int) -> np.ndarray:
    """Distance of every pixel from the probe centre (N//2, N//2); float64 (N, N)."""
    offsets = np.arange(n) - n // 2
    return np.hypot(offsets[:, None], offsets[None, :])


def probe_mask(n: int) -> np.ndarray:
    """Disk of radius N/4 centred at (N//2, N//2): bool (N, N), True where ``r <= N/4``."""
    check_power_of_two(n)
    return radius_map(n) <= n / 4


def _soft_aperture(n: int, outer: float, inner: float, blur: float) -> np.ndarray:
    """Annulus ``inner <= r <= outer`` blurred by a Gaussian of std ``blur``; float64, peak 1."""
    r = radius_map(n)
    support = ((r <= outer) & (r >= inner)).astype(np.float64)
    if not support.any():
        raise PhysicsError(
            f"aperture inner={inner}, outer={outer} covers no pixel of a {n}x{n} probe")
    if blur > 0:
        support = ndimage.gaussian_filter(support, blur, mode="constant")
    return support / support.max()


def disk_probe(n: int = 64, *, radius: float | None = None, blur: float = 1.0) -> np.ndarray:
    """Default soft disk probe with flat phase.

    A Gaussian window ``exp(-r^2 / (2 radius^2))`` thresholded at its ``exp(-1/2)`` level (i.e. the
    disk ``r <= radius``), blurred by a Gaussian of std ``blur`` pixels and scaled to peak 1.

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    radius : float, optional
        Disk radius in pixels, > 0. Default ``0.2 * N`` (12.8 px for N = 64): the blurred edge
        (about 2 * blur wide) then stays close to the N/4 normalization mask and inside the
        central N/2 window where the model's object is non-zero.
    blur : float
        Edge blur in pixels, >= 0.

    Returns
    -------
    ndarray, complex64, shape (N, N)
        Real, non-negative values; peak amplitude 1.
    """
    check_power_of_two(n)
    rad = check_positive(0.2 * n if radius is None else radius, name="radius")
    sigma = check_positive(blur, name="blur", allow_zero=True)
    return _soft_aperture(n, rad, 0.0, sigma).astype(np.complex64)


def gaussian_probe(n: int = 64, *, sigma: float) -> np.ndarray:
    """Gaussian probe ``P = exp(-r^2 / (2 sigma^2))`` with flat phase (amplitude std ``sigma``).

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    sigma : float
        Standard deviation of the amplitude in pixels, > 0 (the intensity's is sigma / sqrt 2).

    Returns
    -------
    ndarray, complex64, shape (N, N)
    """
    check_power_of_two(n)
    s = check_positive(sigma, name="sigma")
    return np.exp(-radius_map(n) ** 2 / (2.0 * s * s)).astype(np.complex64)


def zone_plate_probe(n: int = 64, *, radius: float | None = None, defocus: float = 0.0,
                     central_stop: float = 0.0, blur: float = 1.0) -> np.ndarray:
    """Zone-plate-like probe: soft annular aperture with quadratic (defocus) phase.

    ``P(r) = a(r) * exp(i * defocus * (r / radius)^2)``, where ``a`` is the annulus
    ``central_stop * radius <= r <= radius`` blurred by ``blur`` pixels (peak 1). The quadratic
    phase is the paraxial wavefront of a beam observed out of focus (Goodman, *Introduction to
    Fourier Optics*, ch. 5); ``defocus`` is the phase at the aperture rim in radians, its sign
    telling converging (< 0) from diverging (> 0). ``defocus = 0`` is the in-focus stand-in.

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    radius : float, optional
        Outer aperture radius in pixels; default ``0.2 * N``.
    defocus : float
        Rim phase in radians (finite).
    central_stop : float
        Inner radius as a fraction of ``radius``, in [0, 1).
    blur : float
        Edge blur in pixels, >= 0.

    Returns
    -------
    ndarray, complex64, shape (N, N)
    """
    check_power_of_two(n)
    rad = check_positive(0.2 * n if radius is None else radius, name="radius")
    if not np.isfinite(defocus):
        raise PhysicsError(f"defocus must be finite (radians at the rim), got {defocus!r}")
    if not 0.0 <= central_stop < 1.0:
        raise PhysicsError(f"central_stop must be in [0, 1), got {central_stop!r}")
    amplitude = _soft_aperture(n, rad, central_stop * rad,
                               check_positive(blur, name="blur", allow_zero=True))
    phase = defocus * (radius_map(n) / rad) ** 2
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


#: Noll index j -> (radial order n, azimuthal order m) of the seeded aberrations of
#: :func:`aberrated_probe`: defocus (4), astigmatism (5, 6), coma (7, 8), trefoil (9, 10)
NOLL_LOW_ORDER: dict[int, tuple[int, int]] = {
    4: (2, 0), 5: (2, -2), 6: (2, 2), 7: (3, -1), 8: (3, 1), 9: (3, -3), 10: (3, 3)}


def zernike(n: int, m: int, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    r"""Zernike polynomial ``Z_n^m`` with Noll's normalization (unit rms over the unit disk).

    .. math::
        Z_n^m = \sqrt{(2 - \delta_{m0})(n + 1)} \, R_n^{|m|}(\rho)
        \begin{cases} \cos(m\theta) & m \ge 0 \\ \sin(|m|\theta) & m < 0 \end{cases},
        \quad R_n^{k}(\rho) = \sum_{s=0}^{(n-k)/2}
        \frac{(-1)^s (n-s)!}{s! \, ((n+k)/2 - s)! \, ((n-k)/2 - s)!} \rho^{n-2s}

    (R. J. Noll, "Zernike polynomials and atmospheric turbulence", JOSA 66, 207 (1976)).

    Parameters
    ----------
    n, m : int
        Radial and azimuthal orders, ``|m| <= n``, ``n - |m|`` even.
    rho, theta : ndarray, float, same shape
        Normalized radius (the unit disk is ``rho <= 1``) and azimuth in radians.

    Returns
    -------
    ndarray, float64, shape of ``rho``
    """
    k = abs(m)
    if n < 0 or k > n or (n - k) % 2:
        raise PhysicsError(f"Zernike orders need |m| <= n and n - |m| even, got n={n}, m={m}")
    radial = np.zeros(np.shape(rho))
    for s in range((n - k) // 2 + 1):
        coef = (-1) ** s * math.factorial(n - s) / (
            math.factorial(s) * math.factorial((n + k) // 2 - s) * math.factorial((n - k) // 2 - s))
        radial = radial + coef * np.asarray(rho, dtype=np.float64) ** (n - 2 * s)
    norm = math.sqrt((2.0 if m != 0 else 1.0) * (n + 1))
    angular = np.cos(m * theta) if m >= 0 else np.sin(k * theta)
    return norm * radial * angular


def rotate_180(probe: np.ndarray) -> np.ndarray:
    """``P(-r)``: the probe rotated by 180 degrees about its centre pixel (N//2, N//2).

    ``out[i, j] = P[(N - i) % N, (N - j) % N]``; an (N, N) array of the input's dtype.
    """
    arr = np.asarray(probe)
    return np.roll(arr[::-1, ::-1], 1, axis=(0, 1))


def rotation_asymmetry(probe: np.ndarray, *, conjugate: bool = False) -> float:
    """How far a probe is from its 180-degree rotation: ``||P - T P|| / ||P||``.

    ``T P = P(-r)`` (:func:`rotate_180`), or ``conj(P(-r))`` with ``conjugate`` — the symmetry
    under which an object and its rotated conjugate ("twin") give the same far-field amplitudes
    at gridsize 1. 0 for the flat-phase disk; up to 2.

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)
        A non-zero finite probe.

    Returns
    -------
    float
    """
    arr = as_finite_array(probe, name="probe", ndim=2).astype(np.complex128)
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise PhysicsError("probe is zero everywhere; its asymmetry is undefined")
    turned = rotate_180(arr)
    if conjugate:
        turned = np.conj(turned)
    return float(np.linalg.norm(arr - turned) / norm)


def _elliptic_support(n: int, radius: float, ellipticity: float, angle: float,
                      centre: tuple[float, float]) -> np.ndarray:
    """Hard elliptical aperture, bool (N, N): semi-axes ``radius`` (along ``angle``) and
    ``radius * (1 - ellipticity)``, centred at ``centre = (x, y)`` in pixels."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    dx, dy = x - centre[0], y - centre[1]
    major = dx * math.cos(angle) + dy * math.sin(angle)
    minor = -dx * math.sin(angle) + dy * math.cos(angle)
    return (major / radius) ** 2 + (minor / (radius * (1.0 - ellipticity))) ** 2 <= 1.0


def aberrated_probe(n: int = 64, *, radius: float | None = None, ellipticity: float = 0.3,
                    aperture_angle: float = 0.5,
                    aperture_offset: tuple[float, float] = (1.5, -1.0),
                    defocus: float = 0.0, zernike_rms: float = 0.5,
                    zernike_terms: tuple[int, ...] = tuple(NOLL_LOW_ORDER), blur: float = 1.0,
                    rng: np.random.Generator | int | None = None) -> np.ndarray:
    r"""Generated experimental-like probe: off-centre elliptical aperture, seeded aberrations.

    ``P = a(x, y) * exp(i * (defocus * rho^2 + phi_Z))``. The amplitude ``a`` is the hard ellipse
    with semi-axes ``R`` (along ``aperture_angle``, radians from +x towards +y) and
    ``R * (1 - ellipticity)``, centred at ``(N//2 + dx, N//2 + dy)`` with ``(dx, dy) =
    aperture_offset``, blurred by a Gaussian of std ``blur`` px and scaled to peak 1. The phase is
    taken about the aperture centre, ``rho = r / R``, ``theta = atan2(y, x)``:

    .. math:: \varphi_Z = c \sum_{j} a_j Z_j(\rho, \theta), \quad a_j \sim N(0, 1)

    over the Noll indices ``zernike_terms`` (default 4-10: defocus, astigmatism, coma, trefoil,
    :func:`zernike`), with ``c`` chosen so that the rms of ``phi_Z`` about its mean over the hard
    aperture's pixels is exactly ``zernike_rms`` radians. ``defocus`` adds an explicit quadratic
    phase (radians at ``rho = 1``, as in :func:`zone_plate_probe`). Coma and trefoil are odd in
    ``r``, and the offset moves the aperture off the centre pixel, so ``P(-r) != P(r)`` and
    ``conj(P(-r)) != P(r)`` (see :func:`rotation_asymmetry`), unlike the disk probe. It is a
    stand-in for a measured probe, not a model of a particular beamline.

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    radius : float, optional
        Major semi-axis R in pixels; default ``0.2 * N``.
    ellipticity : float
        ``1 - minor / major`` in [0, 1).
    aperture_angle : float
        Orientation of the major axis in radians.
    aperture_offset : (float, float)
        Aperture centre minus (N//2, N//2) as (dx, dy) in pixels; ``R + |offset| <= N/2 - 1``.
    defocus : float
        Extra quadratic phase at ``rho = 1`` in radians.
    zernike_rms : float
        Rms in radians of the seeded Zernike phase over the aperture, >= 0.
    zernike_terms : tuple of int
        Noll indices of the seeded terms, keys of :data:`NOLL_LOW_ORDER`.
    blur : float
        Edge blur in pixels, >= 0.
    rng : Generator, int or None
        Random source of the coefficients ``a_j``.

    Returns
    -------
    ndarray, complex64, shape (N, N)
        Peak amplitude 1 (normalize with :func:`normalize_probe`).
    """
    check_power_of_two(n)
    rad = check_positive(0.2 * n if radius is None else radius, name="radius")
    if not 0.0 <= ellipticity < 1.0:
        raise PhysicsError(f"ellipticity must be in [0, 1), got {ellipticity!r}")
    dx, dy = (float(v) for v in aperture_offset)
    if not all(math.isfinite(v) for v in (dx, dy, aperture_angle, defocus)):
        raise PhysicsError("aperture_offset, aperture_angle and defocus must be finite, got "
                           f"{aperture_offset!r}, {aperture_angle!r}, {defocus!r}")
    if rad + math.hypot(dx, dy) > n / 2 - 1:
        raise PhysicsError(f"aperture radius {rad:g} + |offset| {math.hypot(dx, dy):g} must be at "
                           f"most N/2 - 1 = {n / 2 - 1:g} to stay inside the {n}x{n} probe")
    rms = check_positive(zernike_rms, name="zernike_rms", allow_zero=True)
    unknown = [j for j in zernike_terms if j not in NOLL_LOW_ORDER]
    if unknown or not zernike_terms:
        raise PhysicsError(f"zernike_terms must be a non-empty subset of {sorted(NOLL_LOW_ORDER)}, "
                           f"got {list(zernike_terms)}")
    centre = (n // 2 + dx, n // 2 + dy)
    support = _elliptic_support(n, rad, float(ellipticity), float(aperture_angle), centre)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    rho, theta = np.hypot(x - centre[0], y - centre[1]) / rad, np.arctan2(y - centre[1], x - centre[0])
    coefs = np.random.default_rng(rng).standard_normal(len(zernike_terms))
    phi_z = sum(a * zernike(*NOLL_LOW_ORDER[j], rho, theta) for a, j in zip(coefs, zernike_terms))
    spread = float(np.std(np.asarray(phi_z)[support]))
    phi_z = np.asarray(phi_z) * (rms / spread if spread > 0 else 0.0)
    amplitude = support.astype(np.float64)
    sigma = check_positive(blur, name="blur", allow_zero=True)
    if sigma > 0:
        amplitude = ndimage.gaussian_filter(amplitude, sigma, mode="constant")
    amplitude /= amplitude.max()
    return (amplitude * np.exp(1j * (defocus * rho**2 + phi_z))).astype(np.complex64)


def probe_from_array(array: object, *, n: int) -> np.ndarray:
    """Validate a user-supplied probe (e.g. read from a file by ``storage``).

    Parameters
    ----------
    array : array_like, real or complex, shape (N, N)
        Finite values.
    n : int
        Expected side N, a power of two.

    Returns
    -------
    ndarray, complex64, shape (N, N)
        A new array.
    """
    check_power_of_two(n)
    arr = as_finite_array(array, name="probe array", ndim=2)
    if arr.shape != (n, n):
        raise PhysicsError(f"probe array must have shape ({n}, {n}), got {arr.shape}")
    return arr.astype(np.complex64)


def normalize_probe(probe: np.ndarray, *,
                    probe_scale: float = DEFAULT_PROBE_SCALE) -> tuple[np.ndarray, float]:
    """Scale a probe so that ``mean(|mask * P|) = 1 / probe_scale``.

    ``P <- P * factor`` with ``factor = 1 / (probe_scale * mean(|mask * P|))``, where the mean runs
    over **all N x N pixels** (pixels outside the mask contribute 0, i.e. the mean equals
    ``sum_{r <= N/4} |P| / N^2``) and ``mask`` is :func:`probe_mask` (disk of radius N/4 centred at
    (N//2, N//2)).

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)
        Finite probe, N a power of two.
    probe_scale : float
        Default 4 (PHYSICS.md), > 0.

    Returns
    -------
    probe : ndarray, complex64, shape (N, N)
        The normalized probe (a new array).
    factor : float
        The multiplier applied (report it as a diagnostic).
    """
    arr = as_finite_array(probe, name="probe", ndim=2)
    n = arr.shape[0]
    if arr.shape != (n, n):
        raise PhysicsError(f"probe must be square (N, N), got shape {arr.shape}")
    check_power_of_two(n)
    scale = check_positive(probe_scale, name="probe_scale")
    mean_abs = float(np.abs(arr[probe_mask(n)].astype(np.complex128)).sum() / (n * n))
    if mean_abs == 0.0:
        raise PhysicsError("probe is zero inside the N/4 mask; it cannot be normalized")
    factor = 1.0 / (scale * mean_abs)
    return (arr * factor).astype(np.complex64), factor


def probe_statistics(probe: np.ndarray) -> dict[str, float]:
    """Summary numbers of a probe (rows of the ``diagnostics`` table).

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)

    Returns
    -------
    dict
        ``probe_size`` (N), ``probe_power`` (sum |P|^2), ``probe_peak_amplitude`` (max |P|),
        ``probe_mean_abs_in_mask`` (sum over r <= N/4 of |P| / N^2, the quantity fixed by
        :func:`normalize_probe`), ``probe_centroid_dx`` / ``probe_centroid_dy`` (|P|^2-weighted
        centroid minus (N//2, N//2), pixels, x = column), ``probe_centroid_offset`` (their norm),
        ``probe_rms_radius`` (sqrt of the |P|^2-weighted mean r^2 about (N//2, N//2)),
        ``probe_power_fraction_in_mask`` (share of sum |P|^2 with r <= N/4).
    """
    arr = as_finite_array(probe, name="probe", ndim=2).astype(np.complex128)
    n = arr.shape[0]
    if arr.shape != (n, n):
        raise PhysicsError(f"probe must be square (N, N), got shape {arr.shape}")
    intensity = np.abs(arr) ** 2
    power = float(intensity.sum())
    if power == 0.0:
        raise PhysicsError("probe is zero everywhere; it has no statistics")
    offsets = np.arange(n) - n // 2
    dy = float((intensity.sum(axis=1) * offsets).sum() / power)
    dx = float((intensity.sum(axis=0) * offsets).sum() / power)
    mask = radius_map(n) <= n / 4
    return {
        "probe_size": float(n),
        "probe_power": power,
        "probe_peak_amplitude": float(np.sqrt(intensity.max())),
        "probe_mean_abs_in_mask": float(np.abs(arr[mask]).sum() / (n * n)),
        "probe_centroid_dx": dx,
        "probe_centroid_dy": dy,
        "probe_centroid_offset": float(np.hypot(dx, dy)),
        "probe_rms_radius": float(np.sqrt((intensity * radius_map(n) ** 2).sum() / power)),
        "probe_power_fraction_in_mask": float(intensity[mask].sum() / power),
    }


def perturbed_probe(probe: np.ndarray, *, relative_error: float, smoothing: float = 2.0,
                    rng: np.random.Generator | int | None = None) -> np.ndarray:
    """The probe plus a smooth random complex error of a given relative size (a starting guess).

    ``P0 = P + a ||P|| D / ||D||`` with ``D`` the part orthogonal to ``P`` of ``g |P| / max |P|``,
    ``g`` complex white noise smoothed by a Gaussian of ``smoothing`` pixels (the error lives where
    the probe does), and ``a = e / sqrt(1 - e^2)`` so that the error after the best complex scalar,
    :func:`probe_relative_error` ``(P0, P)``, is exactly ``e``.

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)
    relative_error : float
        ``0 <= e < 1``; 0 returns a copy of the probe.
    smoothing : float, optional
        Width in pixels of the Gaussian that smooths the noise.
    rng : numpy.random.Generator, int or None

    Returns
    -------
    ndarray, complex64, shape (N, N)
    """
    p = as_finite_array(probe, name="probe", ndim=2).astype(np.complex128)
    if not 0 <= relative_error < 1:
        raise PhysicsError(f"relative_error must be in [0, 1), got {relative_error!r}")
    gen = np.random.default_rng(rng)
    noise = gen.standard_normal(p.shape) + 1j * gen.standard_normal(p.shape)
    smooth = ndimage.gaussian_filter(noise.real, smoothing) + 1j * ndimage.gaussian_filter(noise.imag, smoothing)
    d = smooth * np.abs(p) / max(float(np.abs(p).max()), 1e-300)
    pp = float(np.vdot(p, p).real)
    if pp > 0:
        d = d - np.vdot(p, d) / pp * p
    norm_d = float(np.linalg.norm(d))
    if relative_error == 0 or norm_d == 0:
        return p.astype(np.complex64)
    a = relative_error / math.sqrt(1.0 - relative_error**2)
    return (p + a * math.sqrt(pp) * d / norm_d).astype(np.complex64)


def probe_relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative error of a probe estimate up to a complex scalar: ``min_c ||c E - P|| / ||P||``.

    ``c = <E, P> / <E, E>`` removes the global phase and the scale, which ptychography cannot
    determine (the object absorbs them). 0 is a perfect estimate; 1 an estimate orthogonal to the
    truth. Both arrays complex (N, N); a zero estimate gives 1.
    """
    e = as_finite_array(estimate, name="estimate", ndim=2).astype(np.complex128)
    p = as_finite_array(truth, name="truth", ndim=2).astype(np.complex128)
    if e.shape != p.shape:
        raise PhysicsError(f"estimate and truth must have one shape, got {e.shape} and {p.shape}")
    ee = float(np.vdot(e, e).real)
    c = np.vdot(e, p) / ee if ee > 0 else 0.0
    return float(np.linalg.norm(c * e - p) / max(float(np.linalg.norm(p)), 1e-300))
