"""Unit tests of the linear mosaic on synthetic images with known beams and noise: the
combination formula, the noise map, the blanking, the common restoring beam, the grid and
the exact daily roll-up. No imager: images are drawn here (fast)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from contimg import naming
from contimg.mosaics.combine import MemberImage, make_mosaic
from contimg.mosaics.daily import block_mean, combine_hourly
from contimg.mosaics.grid import MosaicGrid, columns_around, grid_covering, image_outline
from contimg.mosaics.restoring_beam import RestoringBeam, gaussian_kernel, to_common_beam
from contimg.mosaics.stage import MosaicOptions, write_products

CELL = 10.0 / 3600  # coarse synthetic images: 10" pixels, 3 across the beam's sigma
N = 240  # 0.67 deg a side
DEC = 55.0
RESTORING = RestoringBeam(100 / 3600, 70 / 3600, 30.0)
PB_SIGMA_DEG = 0.15


def _wcs(ra: float) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [ra, DEC]
    wcs.wcs.crpix = [N / 2 + 1, N / 2 + 1]
    wcs.wcs.cdelt = [-CELL, CELL]
    return wcs


def _truth_at(ra: np.ndarray, dec: np.ndarray, sources, beam: RestoringBeam) -> np.ndarray:
    """Point sources (ra, dec, Jy) restored with `beam`, in Jy/beam, at sky positions."""
    plane = np.zeros(np.shape(ra))
    s_maj, s_min = (v / math.sqrt(8 * math.log(2)) for v in (beam.bmaj_deg, beam.bmin_deg))
    pa = math.radians(beam.bpa_deg)
    for ra_s, dec_s, flux in sources:
        east = ((ra - ra_s + 180) % 360 - 180) * math.cos(math.radians(dec_s))
        north = dec - dec_s
        along = east * math.sin(pa) + north * math.cos(pa)
        across = -east * math.cos(pa) + north * math.sin(pa)
        plane += flux * np.exp(-0.5 * ((along / s_maj) ** 2 + (across / s_min) ** 2))
    return plane


def _sky(wcs: WCS, sources, beam: RestoringBeam) -> np.ndarray:
    """The restored sky on an image grid."""
    y, x = np.mgrid[0:N, 0:N]
    return _truth_at(*wcs.pixel_to_world_values(x, y), sources, beam)


def _primary_beam(wcs: WCS, ra_centre: float) -> np.ndarray:
    """A Gaussian primary beam about (ra_centre, DEC)."""
    y, x = np.mgrid[0:N, 0:N]
    ra, dec = wcs.pixel_to_world_values(x, y)
    d_ra = (ra - ra_centre + 180) % 360 - 180
    r2 = (d_ra * np.cos(np.radians(DEC))) ** 2 + (dec - DEC) ** 2
    return np.exp(-0.5 * r2 / PB_SIGMA_DEG**2)


def _correlated_noise(rng, sigma: float, beam: RestoringBeam) -> np.ndarray:
    """Noise of rms `sigma` correlated over the restoring beam, as in a radio image."""
    from scipy.signal import fftconvolve

    white = rng.standard_normal((N + 60, N + 60))
    smooth = fftconvolve(white, gaussian_kernel(RestoringBeam(beam.bmaj_deg / math.sqrt(2),
                                                              beam.bmin_deg / math.sqrt(2),
                                                              beam.bpa_deg), CELL), mode="same")
    smooth = smooth[30:-30, 30:-30]
    return smooth / smooth.std() * sigma


def _write_member(directory: Path, name: str, ra: float, sources, sigma: float, rng=None,
                  beam: RestoringBeam = RESTORING) -> MemberImage:
    wcs = _wcs(ra)
    pb = _primary_beam(wcs, ra)
    apparent = pb * _sky(wcs, sources, beam)
    if rng is not None:
        apparent = apparent + _correlated_noise(rng, sigma, beam)
    header = wcs.to_header()
    header["BMAJ"], header["BMIN"], header["BPA"] = beam.bmaj_deg, beam.bmin_deg, beam.bpa_deg
    image, beam_path = directory / f"{name}-image.fits", directory / f"{name}-beam.fits"
    fits.PrimaryHDU(apparent.astype(np.float32)[None, None], header).writeto(image)
    fits.PrimaryHDU(pb.astype(np.float32)[None, None], header).writeto(beam_path)
    return MemberImage(name, image, beam_path, sigma)


def _value_at(planes, ra: float, dec: float, which: str = "image") -> float:
    x, y = planes.grid.wcs().world_to_pixel_values(ra, dec)
    return float(getattr(planes, which)[int(round(float(y))), int(round(float(x)))])


def test_the_combination_weights_each_pixel_by_its_own_beam_and_noise(tmp_path):
    """Two overlapping noiseless images of one sky with different noise levels: every kept
    pixel is the true sky (whatever the weights, each image is B·I); a source 0.25 deg off
    one image's centre (beam 0.61) and 0.15 deg off the other's (0.84) comes out at its true
    flux, where weighting the tiles by one scalar and dividing by the beam at the mosaic
    centre would not; the weight map is Σ B²/σ²."""
    ra_a, ra_b = 150.0, 150.0 + 0.4 / math.cos(math.radians(DEC))
    between = ra_a + 0.25 / math.cos(math.radians(DEC))
    sources = [(between, DEC, 2.0), (ra_a, DEC + 0.1, 1.0)]
    members = [_write_member(tmp_path, "a", ra_a, sources, 0.001),
               _write_member(tmp_path, "b", ra_b, sources, 0.003)]
    planes = make_mosaic(members, cutoff=0.2)
    y, x = np.mgrid[0:planes.grid.ny, 0:planes.grid.nx]
    truth = _truth_at(*planes.grid.wcs().pixel_to_world_values(x, y), sources, RESTORING)
    kept = np.isfinite(planes.image)
    assert kept.sum() > 1000
    assert np.abs(planes.image[kept] - truth[kept]).max() < 0.025 * 2.0  # bilinear, 3 px per sigma
    x_s, y_s = (int(round(float(v))) for v in planes.grid.wcs().world_to_pixel_values(between, DEC))
    box = (slice(y_s - 3, y_s + 4), slice(x_s - 3, x_s + 4))
    assert abs(np.nanmax(planes.image[box]) / truth[box].max() - 1) < 0.02  # at the pixels' peak
    b_a, b_b = (math.exp(-0.5 * (d / PB_SIGMA_DEG) ** 2) for d in (0.25, 0.15))
    w_a, w_b = 1 / 0.001**2, 1 / 0.003**2
    weight = _value_at(planes, between, DEC, "weight")
    assert weight == pytest.approx(b_a**2 * w_a + b_b**2 * w_b, rel=0.02)
    centre_beam = math.exp(-0.5 * (0.2 / PB_SIGMA_DEG) ** 2)  # both tiles' beam at the middle
    scalar = (w_a * b_a * 2.0 + w_b * b_b * 2.0) / (w_a + w_b) / centre_beam
    assert abs(scalar / 2.0 - 1) > 0.1  # the telescope pipeline's way is visibly wrong here
    assert planes.sigma_ref == pytest.approx(0.002)


def test_the_noise_map_is_the_noise_of_the_mosaic(tmp_path):
    """Pure-noise images (noise correlated over the beam, as imaged noise is): the mosaic
    divided by its noise map has unit rms, in the overlap and off it."""
    rng = np.random.default_rng(3)
    ra_a, ra_b = 150.0, 150.0 + 0.5 / math.cos(math.radians(DEC))
    members = [_write_member(tmp_path, "a", ra_a, [], 0.002, rng),
               _write_member(tmp_path, "b", ra_b, [], 0.001, rng)]
    planes = make_mosaic(members, cutoff=0.2)
    ratio = planes.image / planes.noise
    finite = ratio[np.isfinite(ratio)]
    assert finite.size > 10000
    assert abs(finite.std() - 1) < 0.1, finite.std()
    # The overlap is quieter than either image at its beam there.
    middle = _value_at(planes, (ra_a + ra_b) / 2, DEC, "noise")
    b = math.exp(-0.5 * (0.25 / PB_SIGMA_DEG) ** 2)
    assert middle == pytest.approx(1 / math.sqrt(b**2 / 0.002**2 + b**2 / 0.001**2), rel=0.02)


def test_pixels_below_the_combined_beam_cutoff_are_blank(tmp_path):
    """One image: the mosaic keeps exactly the pixels where its beam is at least the cutoff
    (the PB limit of the corrected image); a second image overlapping un-blanks its side."""
    one = make_mosaic([_write_member(tmp_path, "a", 150.0, [], 0.001)], cutoff=0.2)
    radius = PB_SIGMA_DEG * math.sqrt(2 * math.log(1 / 0.2))  # where the beam is 0.2
    inside = _value_at(one, 150.0, DEC + 0.95 * radius)
    outside = _value_at(one, 150.0, DEC + 1.05 * radius)
    assert np.isfinite(inside) and np.isnan(outside)
    assert np.isnan(_value_at(one, 150.0, DEC + 1.05 * radius, "noise"))
    assert _value_at(one, 150.0, DEC + 1.05 * radius, "weight") > 0  # kept for the daily sum
    kept = np.isfinite(one.image).sum() * CELL**2
    assert kept == pytest.approx(math.pi * radius**2, rel=0.05)
    two = make_mosaic([_write_member(tmp_path, "a2", 150.0, [], 0.001),
                       _write_member(tmp_path, "b2", 150.0 + 0.7 / math.cos(math.radians(DEC)), [], 0.001)],
                      cutoff=0.2)
    assert np.isfinite(two.image).sum() > 1.8 * np.isfinite(one.image).sum()


def test_convolution_to_the_common_beam_keeps_peak_and_integrated_flux():
    """A point source restored with a smaller, rotated beam, brought to a larger one: its peak
    (Jy/beam) stays its flux, the integral (sum / beam area) too, and its shape is the target's."""
    wcs = _wcs(150.0)
    small = RestoringBeam(60 / 3600, 30 / 3600, -40.0)
    target = RestoringBeam(100 / 3600, 70 / 3600, 20.0)
    plane = _sky(wcs, [(150.0, DEC, 1.5)], small)
    out = to_common_beam(plane, small, target, CELL)
    expected = _sky(wcs, [(150.0, DEC, 1.5)], target)
    assert out.max() == pytest.approx(1.5, rel=0.01)
    assert out.sum() * CELL**2 / target.area_deg2 == pytest.approx(1.5, rel=0.01)
    assert np.abs(out - expected).max() < 0.01 * 1.5
    assert to_common_beam(plane, small, small, CELL) is plane


def test_images_with_different_beams_are_mosaicked_at_the_common_beam(tmp_path):
    ra_b = 150.0 + 0.3 / math.cos(math.radians(DEC))
    source = [(150.0 + 0.15 / math.cos(math.radians(DEC)), DEC, 1.0)]
    members = [_write_member(tmp_path, "a", 150.0, source, 0.001),
               _write_member(tmp_path, "b", ra_b, source, 0.001,
                             beam=RestoringBeam(110 / 3600, 50 / 3600, 60.0))]
    planes = make_mosaic(members, cutoff=0.2)
    assert planes.restoring.bmaj_deg >= 110 / 3600 and planes.restoring.bmin_deg >= 60 / 3600 * 0.99
    assert abs(np.nanmax(planes.image) - 1.0) < 0.02
    assert planes.members[0]["convolved"] or planes.members[1]["convolved"]


def test_the_grid_closes_around_the_sky_and_cutouts_line_up():
    cell = 6.09 / 3600
    n_360 = columns_around(cell, 55.2)
    assert n_360 % 16 == 0 and abs(360 / n_360 * math.cos(math.radians(55)) / cell - 1) < 0.01
    outlines = [image_outline(_header(ra)) for ra in (359.7, 0.4)]  # across RA 0
    grid = grid_covering(outlines, CELL, DEC)
    assert grid.nx < 500  # 1.9 deg of RA, not a 360-degree strip
    cut = grid.cutout(7, 3, 20, 20)
    big, small = grid.wcs(), cut.wcs()
    assert np.allclose(big.pixel_to_world_values(7 + 5, 3 + 9), small.pixel_to_world_values(5, 9),
                       atol=1e-9)
    assert naming.mosaic_product_name("hourly", "2025-10-13T13:28:03", "image") == \
        "2025-10-13T13.mosaic.fits"
    assert naming.mosaic_product_name("daily", "2025-10-13T13:28:03", "noise") == \
        "2025-10-13.mosaic-noise.fits"


def _header(ra: float) -> fits.Header:
    header = _wcs(ra).to_header()
    header["NAXIS1"] = header["NAXIS2"] = N
    return header


def test_block_mean_is_exact():
    plane = np.arange(35, dtype=float).reshape(5, 7)
    blocks = block_mean(plane, 1, 2, 2)
    assert blocks.shape == (3, 5)
    assert blocks[0, 1] == pytest.approx((plane[0, 0] + plane[0, 1]) / 4)
    assert blocks.sum() * 4 == pytest.approx(plane.sum())


def test_the_daily_mosaic_adds_the_hourly_sums_exactly(tmp_path):
    """Two 'hourly' mosaics overlapping: the daily at factor 1 equals one mosaic of all the
    images (same grid), and at factor 2 it is the weighted mean of each 2x2 block."""
    step = 0.5 / math.cos(math.radians(DEC))
    sources = [(150.0 + 0.75 * step, DEC, 1.0)]
    images = [_write_member(tmp_path, f"g{i}", 150.0 + i * step, sources, 0.001 * (1 + i % 2))
              for i in range(4)]
    hourly = []
    for index, part in enumerate((images[:2], images[2:])):
        planes = make_mosaic(part, cutoff=0.2)
        directory = tmp_path / f"h{index}"
        directory.mkdir()
        moment = f"2025-10-13T1{index}:00:00"
        paths = write_products(directory, "hourly", naming.parse_timestamp(moment), planes,
                               {"min_noise_jy": 1e-3, "median_noise_jy": 1e-3})
        hourly.append((f"h{index}", paths["image"], paths["weight"]))
    daily = combine_hourly(hourly, factor=1, cutoff=0.2)
    whole = make_mosaic(images, cutoff=0.2, grid=daily.grid)
    both = np.isfinite(daily.image) & np.isfinite(whole.image)
    assert both.sum() > 0.9 * np.isfinite(whole.image).sum()
    assert np.allclose(daily.image[both], whole.image[both], atol=1e-5)
    assert np.allclose(daily.weight, whole.weight, rtol=1e-5, atol=1e-3)
    coarse = combine_hourly(hourly, factor=2, cutoff=0.2)
    assert coarse.grid.cell_deg * coarse.grid.factor == pytest.approx(2 * CELL)
    assert abs(_value_at(coarse, *sources[0][:2]) - 1.0) < 0.1  # a 2x2 block mean at the peak
    assert float(np.nansum(coarse.numerator)) * 4 == pytest.approx(float(daily.numerator.sum()), rel=1e-4)


def test_mosaic_options_are_validated():
    with pytest.raises(ValueError, match="daily cell factor"):
        MosaicOptions(daily_cell_factor=3)
    with pytest.raises(ValueError, match="cutoff"):
        MosaicOptions(cutoff=0)
    assert isinstance(MosaicGrid(CELL, 16, 0, 0, 1, 1).wcs(), WCS)
