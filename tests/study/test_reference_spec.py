"""Spec fields of the reference lines object, the aberrated probe and the .npz probe."""

from __future__ import annotations

import pytest

from ptycho_dist.errors import SpecError
from ptycho_dist.study import ObjectSpec, ProbeSpec, Scenario, parse_study


def test_defaults() -> None:
    o, p = ObjectSpec(kind="ptychopinn_lines"), ProbeSpec(kind="aberrated")
    assert (o.n_lines, o.lines_phase) == (400, "zero")
    assert (p.ellipticity, p.aperture_angle, p.aperture_offset, p.zernike_rms, p.aberration_seed) == (
        0.3, 0.5, (1.5, -1.0), 0.5, 0)
    assert ProbeSpec(kind="npz", path="x.npz").npz_key == "probeGuess"
    s = Scenario(object=o, probe=p)
    assert Scenario.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(("text", "needle"), [
    ('[base.probe]\nkind = "npz"\n', "path is required when kind = 'file' or 'npz'"),
    ('[base.probe]\npath = "p.npz"\n', "path is required when kind = 'file' or 'npz'"),
    ('[base.probe]\nkind = "aberrated"\nn = 32\naperture_offset = [10.0, 0.0]\n',
     "base.probe.aperture_offset: radius + |offset| = 16.4 must be at most N/2 - 1 = 15"),
    ('[base.probe]\nkind = "aberrated"\nellipticity = 1.0\n', "base.probe.ellipticity"),
    ('[base.probe]\nzernike_rms = -1.0\n', "base.probe.zernike_rms"),
    ('[base.object]\nkind = "ptychopinn_lines"\nlines_phase = "random"\n', "base.object.lines_phase"),
    ('[base.probe]\nkind = "npz"\npath = "p.npz"\nnpz_key = ""\n', "base.probe.npz_key"),
])
def test_rules(text: str, needle: str) -> None:
    with pytest.raises(SpecError, ) as info:
        parse_study(text, source="<t>")
    assert needle in str(info.value), str(info.value)
