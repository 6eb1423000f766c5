"""Which transit calibrates the day: the largest *beam-weighted* flux, or the operator's.

Two tiny calibrator transits on one day: 3C147 (22.5 Jy in the VLA list) passing 1.4 deg
from the pointing (Airy power ~0.47 at band centre: ~10.7 Jy seen) and 3C196 (13.9 Jy)
through the beam centre. The catalogue flux alone would pick 3C147.
"""

from __future__ import annotations

import warnings

import pytest

from contimg.calibration.solve import CalibrationError
from contimg.calibration.stages import CalibrationConfig, solve_bandpass_for_day
from contimg.catalogs.vlacals import load_calibrators
from contimg.conversion.pipeline import convert_into_tree
from contimg.layout import resolve_layout
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.state import StateStore, products_db

OFF_BEAM_DEG = 1.4


@pytest.fixture
def two_transits(layout_env, tmp_path):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    dec = {c.name: c.dec_deg for c in load_calibrators()}
    groups = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, catalogue_name, offset in (("3C147", "0542+498", OFF_BEAM_DEG),
                                             ("3C196", "0813+482", 0.0)):
            (group,) = simulate(SimulationRequest(out_dir=tmp_path / name, size="tiny", seed=3,
                                                  calibrator=name,
                                                  dec_deg=dec[catalogue_name] + offset))
            convert_into_tree(group.group_id, group.files, layout, store)
            groups[name] = group.group_id
    # One catalogue holding both fields (the simulator writes each group's own).
    catalog = layout.static_dir / "catalogs" / "nvss.tsv"
    catalog.parent.mkdir(parents=True, exist_ok=True)
    tables = [next((tmp_path / name).glob("truth/*_nvss.tsv")).read_text().splitlines()
              for name in groups]
    catalog.write_text("\n".join([*tables[0], *tables[1][3:]]) + "\n")  # one header (3 lines)
    return layout, store, groups


def test_the_day_is_solved_on_the_largest_beam_weighted_flux(two_transits):
    layout, store, groups = two_transits
    rows = {r["group_id"]: r for r in products_db.converted_between(
        store, 0, 1e6, kind="calibrators")}
    assert set(rows) == set(groups.values()), "both transits classified as calibrator groups"
    outcome = solve_bandpass_for_day(layout, store, groups["3C196"][:10], config=CalibrationConfig())
    assert outcome.group_id == groups["3C196"]
    assert "largest beam-weighted flux" in outcome.chosen_because
    assert groups["3C147"] in outcome.chosen_because  # both listed, with what each gave
    assert outcome.active


def test_an_operator_can_name_the_transit(two_transits):
    layout, store, groups = two_transits
    outcome = solve_bandpass_for_day(layout, store, groups["3C147"][:10], group=groups["3C147"],
                                     config=CalibrationConfig())
    assert outcome.group_id == groups["3C147"] and outcome.chosen_because == "named by the operator"


def test_naming_a_group_that_is_no_calibrator_transit_says_where_to_look(two_transits):
    layout, store, groups = two_transits
    with pytest.raises(CalibrationError, match="not a converted calibrator group.*contimg groups"):
        solve_bandpass_for_day(layout, store, groups["3C147"][:10], group="2025-10-13T00:00:00",
                               config=CalibrationConfig())
