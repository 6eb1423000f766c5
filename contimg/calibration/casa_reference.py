"""CASA's own way to MODEL_DATA, `ft` of a component list: the reference the sky-model
tests and the calibration benchmark compare `predict_model_data` with (no beam: ft has
none)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contimg.calibration.sky_model import Component


def casa_ft(ms: Path, components: Sequence[Component]) -> None:
    """Write the components into MODEL_DATA of `ms` with casatools + `ft` (usescratch)."""
    from casatasks import ft
    from casatools import componentlist

    path = str(Path(ms).with_name(Path(ms).name + ".cl"))
    shutil.rmtree(path, ignore_errors=True)
    cl = componentlist()
    for c in components:
        cl.addcomponent(dir=f"J2000 {float(np.radians(c.ra_deg))!r}rad {float(np.radians(c.dec_deg))!r}rad",
                        flux=c.flux_jy, fluxunit="Jy", freq="1.4GHz", shape="point",
                        spectrumtype="spectral index", index=c.spectral_index)
    cl.rename(path)
    cl.close()
    try:
        ft(vis=str(ms), complist=path, usescratch=True)
    finally:
        shutil.rmtree(path, ignore_errors=True)
