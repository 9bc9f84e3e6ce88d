"""PtychoPINN-format .npz probes: header checks and reading (storage.inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.errors import SpecError
from ptycho_dist.storage.inputs import check_npz_probe, load_npz_probe, npz_array_header


def _probe(n: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))).astype(np.complex128)


def test_reads_probe_guess_without_pickle(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez_compressed(path, probeGuess=_probe(), xcoords=np.arange(5.0), diffraction=np.zeros((5, 32, 32)))
    assert npz_array_header(path, "probeGuess", field="probe.path") == ((32, 32), np.dtype(np.complex128))
    assert npz_array_header(path, "diffraction", field="probe.path")[0] == (5, 32, 32)
    np.testing.assert_array_equal(load_npz_probe(path, key="probeGuess", n=32, field="probe.path"), _probe())


@pytest.mark.parametrize(("arrays", "n", "needles"), [
    ({"xcoords": np.arange(3.0), "objectGuess": np.ones((8, 8), complex)}, 32,
     ["no array 'probeGuess'", "found: objectGuess, xcoords"]),
    ({"probeGuess": _probe(16)}, 32, ["array 'probeGuess' has shape (16, 16), expected (32, 32)", "probe.n = 32"]),
    ({"probeGuess": np.ones((2, 32, 32), complex)}, 32, ["has shape (2, 32, 32)"]),
    ({"probeGuess": np.ones((32, 32), np.int64)}, 32, ["dtype int64", "shape (32, 32)", "expected a complex"]),
])
def test_bad_files_name_the_file_key_and_shape(tmp_path: Path, arrays: dict[str, np.ndarray], n: int,
                                               needles: list[str]) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(SpecError) as info:
        check_npz_probe(path, key="probeGuess", n=n, field="probe.path")
    message = str(info.value)
    assert message.startswith(f"probe.path: {path}: ") and "\n" not in message
    assert all(needle in message for needle in needles), message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"probe.path: .*nope.npz: no such file"):
        load_npz_probe(tmp_path / "nope.npz", key="probeGuess", n=32, field="probe.path")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(SpecError, match=r"junk.npz: cannot read array 'probeGuess' of the .npz file"):
        npz_array_header(junk, "probeGuess", field="probe.path")


def test_object_arrays_are_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, probeGuess=np.array([[{"a": 1}] * 4] * 4, dtype=object))
    with pytest.raises(SpecError, match="dtype object"):
        load_npz_probe(path, key="probeGuess", n=4, field="probe.path")
