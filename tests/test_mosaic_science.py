"""Science validation of the hourly mosaic against the simulator's truth: three consecutive
simulated groups (small preset, unit gains, so DATA is imaged as in
tests/test_imaging_science.py) imaged by the platform's stage, then mosaicked from what
products.images registered. Sources of 1 Jy sit at a group centre, between groups, and
near the edges of single images (0.8° from an image centre in a 2° field, where one image's
beam is ≈ 0.7 and the neighbour's far lower). The mosaic code never reads the truth; the
test compares with it.

SNR: image noise ≈ 0.8 mJy (Briggs 0), 0.25 Jy sources at beam ≥ 0.6 → SNR ≥ 150 in one image.
"""

from __future__ import annotations

import math
import time
import warnings
from datetime import timedelta

import numpy as np
import pytest
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from pyuvdata.utils.phasing import transform_app_to_icrs

from contimg import naming
from contimg.conversion.pipeline import convert_into_tree
from contimg.imaging.options import ImagingOptions
from contimg.imaging.quality import robust_rms
from contimg.imaging.stage import image_group
from contimg.instrument import GROUP_DURATION_S, SITE_HEIGHT_M, SITE_LAT_DEG, SITE_LON_DEG
from contimg.mosaics.stage import make_hourly_mosaic
from contimg.simulation.sky import PointSource
from contimg.simulation.telescope import DEFAULT_START, SimulationRequest, simulate
from contimg.state import products_db
from contimg_assets.mosaics import daily_mosaic, hourly_mosaic
from sensors.mosaics import plan_mosaics
from tests.conftest import module_home

pytestmark = pytest.mark.slow

DEC_DEG = 55.0
N_GROUPS = 3
EDGE_DEG = 0.8  # on the sky, from an image centre; the image's half-width is 1.0 deg
# Faint enough that the sidelobes a neighbour's source (outside an image's 2 deg field,
# so never cleaned there) leaves stay well below the thermal noise: at 1 Jy they doubled
# the images' rms (1.5 mJy against 0.79 expected), and, the same in consecutive images
# (one uv coverage), they do not average down in the mosaic as thermal noise does.
FLUX_JY = 0.25


def _centre(index: int) -> tuple[float, float]:
    """ICRS of the meridian at the pointing declination at group `index`'s midpoint."""
    middle = Time(DEFAULT_START + timedelta(seconds=GROUP_DURATION_S * (index + 0.5)))
    site = EarthLocation.from_geodetic(SITE_LON_DEG, SITE_LAT_DEG, SITE_HEIGHT_M)
    lst = middle.sidereal_time("apparent", longitude=SITE_LON_DEG).rad
    ra, dec = transform_app_to_icrs(time_array=np.array([middle.jd]), app_ra=np.array([lst]),
                                    app_dec=np.array([np.radians(DEC_DEG)]), telescope_loc=site)
    return float(np.degrees(np.ravel(ra)[0])), float(np.degrees(np.ravel(dec)[0]))


def _sources() -> tuple[PointSource, ...]:
    (ra0, dec0), (ra1, _), (ra2, _) = (_centre(i) for i in range(N_GROUPS))
    east = 1 / math.cos(math.radians(dec0))  # degrees of RA per degree on the sky
    return (PointSource("centre-0", ra0, dec0, FLUX_JY, 0.0),
            PointSource("west-edge-0", ra0 - EDGE_DEG * east, dec0, FLUX_JY, 0.0),
            PointSource("north-edge-1", ra1, dec0 + EDGE_DEG, FLUX_JY, 0.0),
            PointSource("between-1-2", (ra1 + ra2) / 2, dec0 - 0.3, FLUX_JY, 0.0),
            PointSource("east-edge-2", ra2 + EDGE_DEG * east, dec0 + 0.2, FLUX_JY, 0.0))


@pytest.fixture(scope="module")
def hourly(tmp_path_factory):
    home = tmp_path_factory.mktemp("mosaic-science")
    sources = _sources()
    with module_home(home) as (layout, store):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            groups = simulate(SimulationRequest(out_dir=home / "files", size="small", seed=5,
                                                n_groups=N_GROUPS, dec_deg=DEC_DEG, corrupt=False,
                                                sources=sources))
        # As tests/test_imaging_science.py: a quarter of lambda/B_max samples the 32-station
        # beam's ~11" minor axis with three pixels; a 2 deg field keeps WSClean quick.
        options = ImagingOptions(data_column="DATA", cell_fraction=0.25, field_deg=2.0)
        for group in groups:
            convert_into_tree(group.group_id, group.files, layout, store)
            image_group(layout, store, group.group_id, options=options)
        began = time.perf_counter()
        outcome = make_hourly_mosaic(layout, store, naming.parse_timestamp(groups[0].group_id))
        print(f"hourly mosaic of {N_GROUPS} images: {time.perf_counter() - began:.1f} s")
        yield sources, outcome, store, groups


def _measure(image_path, source: PointSource) -> tuple[float, float, float]:
    """(integrated flux in Jy, offset of the fitted peak from the truth in arcsec, beam
    minor axis in arcsec). The flux is the image summed over the beam-shaped ellipse of
    semi-axes 1.5 x (BMAJ, BMIN) on the sky (99.8 % of a beam-shaped source) over the beam
    area in pixels there: smearing lowers a peak but keeps the integral, and an aperture
    matched to the 66" x 10" beam holds 6x less noise and sidelobe than a circle of 1.5 BMAJ
    (whose sum scattered by ±6 % at 0.25 Jy). The peak is a 2-D quadratic fit to the log
    of 3x3 pixels."""
    with fits.open(image_path) as hdul:
        plane, header = hdul[0].data, hdul[0].header
    wcs = WCS(header)
    x0, y0 = (int(round(float(v))) for v in wcs.world_to_pixel_values(source.ra_deg, source.dec_deg))
    half = 40
    box = plane[y0 - half:y0 + half + 1, x0 - half:x0 + half + 1]
    ys, xs = np.mgrid[y0 - half:y0 + half + 1, x0 - half:x0 + half + 1]
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    east, north = (ra - source.ra_deg) * math.cos(math.radians(source.dec_deg)), dec - source.dec_deg
    pa = math.radians(header["BPA"])
    along, across = east * math.sin(pa) + north * math.cos(pa), -east * math.cos(pa) + north * math.sin(pa)
    inside = (along / (1.5 * header["BMAJ"])) ** 2 + (across / (1.5 * header["BMIN"])) ** 2 <= 1
    pixel_area = abs(header["CDELT1"]) * math.cos(math.radians(source.dec_deg)) * header["CDELT2"]
    beam_area = math.pi * header["BMAJ"] * header["BMIN"] / (4 * math.log(2))
    flux = float(np.nansum(box[inside]) * pixel_area / beam_area)
    offset = np.hypot(east, north)
    near = np.where(offset <= header["BMIN"], box, -np.inf)  # the peak pixel near the truth
    dy, dx = np.unravel_index(np.argmax(np.nan_to_num(near, nan=-np.inf)), box.shape)
    y, x = y0 - half + dy, x0 - half + dx
    gy, gx = np.mgrid[-1:2, -1:2]
    values = np.log(plane[y - 1:y + 2, x - 1:x + 2]).ravel()
    design = np.stack([gx.ravel() ** 2, gy.ravel() ** 2, (gx * gy).ravel(), gx.ravel(), gy.ravel(),
                       np.ones(9)], axis=1)
    a, b, c, d, e, _ = np.linalg.lstsq(design, values, rcond=None)[0]
    sx, sy = np.linalg.solve([[2 * a, c], [c, 2 * b]], [-d, -e])
    found = SkyCoord(*wcs.pixel_to_world_values(x + sx, y + sy), unit="deg")
    return flux, found.separation(SkyCoord(source.ra_deg, source.dec_deg, unit="deg")).arcsec, \
        header["BMIN"] * 3600


def test_fluxes_and_positions_in_the_hourly_mosaic(hourly):
    sources, outcome, _, _ = hourly
    with fits.open(outcome.products["noise"]) as hdul:
        noise, wcs = hdul[0].data, WCS(hdul[0].header)
    for source in sources:
        flux, offset, bmin = _measure(outcome.products["image"], source)
        x, y = (int(round(float(v))) for v in wcs.world_to_pixel_values(source.ra_deg, source.dec_deg))
        snr = source.flux_jy / noise[y, x]
        print(f"{source.name}: {flux:.4f} Jy, offset {offset:.2f}\" (beam minor {bmin:.1f}\"), SNR {snr:.0f}")
        assert snr > 50
        assert abs(flux / source.flux_jy - 1) < 0.05, (source.name, flux)
        assert offset < 0.2 * bmin, (source.name, offset, bmin)


def test_the_noise_map_matches_the_rms_of_a_source_free_region(hourly):
    """A box well away from every source, in the overlap of the first two images."""
    sources, outcome, _, _ = hourly
    with fits.open(outcome.products["image"]) as image, fits.open(outcome.products["noise"]) as noise:
        plane, noise_map, wcs = image[0].data, noise[0].data, WCS(image[0].header)
    (ra0, dec0), (ra1, _) = _centre(0), _centre(1)
    x, y = (int(round(float(v))) for v in wcs.world_to_pixel_values((ra0 + ra1) / 2, dec0 + 0.4))
    box = (slice(y - 60, y + 61), slice(x - 60, x + 61))
    ra, dec = wcs.pixel_to_world_values(*np.meshgrid(np.arange(x - 60, x + 61), np.arange(y - 60, y + 61)))
    for source in sources:  # nothing within 10 arcmin
        east = (ra - source.ra_deg) * math.cos(math.radians(dec0))
        assert np.hypot(east, dec - source.dec_deg).min() > 1 / 6
    measured, predicted = robust_rms(plane[box]), float(np.nanmedian(noise_map[box]))
    print(f"source-free rms {measured * 1e3:.3f} mJy/beam, noise map {predicted * 1e3:.3f} mJy/beam")
    assert abs(measured / predicted - 1) < 0.2


def test_the_mosaic_is_registered_with_its_members(hourly):
    _, outcome, store, groups = hourly
    row = products_db.mosaic_record(store, outcome.name)
    assert row is not None and row["kind"] == "hourly" and row["n_members"] == N_GROUPS
    assert {m["name"] for m in outcome.members} == {g.group_id for g in groups}
    header = fits.getheader(outcome.products["image"])
    assert header["NMEMBERS"] == N_GROUPS and header["MOSKIND"] == "hourly"
    assert any("I = sum(B A / s^2)" in str(h) for h in header["HISTORY"])
    assert outcome.products["quicklook"].read_bytes()[:4] == b"\x89PNG"
    assert outcome.set_dir.parent.name == outcome.name[:10]



def test_the_sensor_plan_and_the_assets(hourly):
    """The sensor waits while the hour is open and images are fresh; once the stream has
    stopped for the grace time, the hour (already made from exactly these images) is not
    requested again and the day is. The assets re-make the hour (the first set aside) and
    add the day, with their checks passing."""
    from dagster import DagsterInstance, materialize

    from resources import StateDatabasesResource, StorageLayoutResource

    _, outcome, store, groups = hourly
    assert plan_mosaics(store, grace_s=600) == []
    later = plan_mosaics(store, grace_s=600, now=time.time() + 3600)
    assert [(r.job, r.partition) for r in later] == [("daily_mosaic_job", "2025-10-13")]
    storage = StorageLayoutResource()
    resources = {"storage": storage, "state": StateDatabasesResource(storage=storage)}
    instance = DagsterInstance.ephemeral()
    hour = materialize([hourly_mosaic], partition_key="2025-10-13-13:00", resources=resources,
                       instance=instance)
    assert hour.success
    event = hour.get_asset_materialization_events()[0].event_specific_data.materialization
    assert event.metadata["n_members"].value == N_GROUPS
    assert "data:image/png;base64," in event.metadata["quicklook"].value
    assert event.metadata["superseded"].value.endswith(tuple("0123456789"))
    checks = hour.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]
    day = materialize([daily_mosaic], partition_key="2025-10-13", resources=resources, instance=instance)
    assert day.success and [c.passed for c in day.get_asset_check_evaluations()] == [True]
    assert products_db.mosaic_record(store, "2025-10-13")["n_members"] == 1
    assert products_db.mosaic_record(store, outcome.name)["set_dir"] == str(outcome.set_dir)
