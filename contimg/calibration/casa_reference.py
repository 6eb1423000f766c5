"""CASA's own paths, the references the tests and the calibration benchmark compare the
platform's code with: `ft` of a component list for `predict_model_data` (no beam: ft has
none), `applycal` for the own apply."""

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


def casa_applycal(ms: Path, paths: Sequence[str], kinds: Sequence[str]) -> None:
    """CASA `applycal` of `paths` (apply order) into CORRECTED_DATA, as the platform
    applies them: nearest in time for delay and bandpass, linear for gains, solution
    flags applied, weights untouched."""
    from casatasks import applycal

    interp = ["nearest" if kind in ("kcal", "bpcal") else "linear" for kind in kinds]
    applycal(vis=str(ms), gaintable=list(paths), interp=interp, calwt=False,
             flagbackup=False, applymode="calflag")


def casa_gaincal(ms: Path, workdir: Path, applied: Sequence[str], refant: str,
                 short_solint: str = "60s", minsnr: float = 3.0) -> tuple[Path, Path]:
    """CASA `gaincal` of the hourly pair the own solver makes: phase-only over the group,
    then amplitude+phase per `short_solint` with it applied; the two table paths."""
    from casatasks import gaincal

    phases, gains = Path(workdir) / "casa_gpcal", Path(workdir) / "casa_2gcal"
    for path in (phases, gains):
        shutil.rmtree(path, ignore_errors=True)
    gaincal(vis=str(ms), caltable=str(phases), calmode="p", solint="inf", refant=refant,
            minsnr=minsnr, gaintable=list(applied))
    gaincal(vis=str(ms), caltable=str(gains), calmode="ap", solint=short_solint, refant=refant,
            minsnr=minsnr, gaintable=[*applied, str(phases)])
    return phases, gains
