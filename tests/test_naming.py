from datetime import UTC, datetime

import pytest

from contimg import naming

MOMENT = datetime(2025, 10, 13, 13, 28, 3, tzinfo=UTC)


def test_timestamp_forms_round_trip():
    assert naming.iso_timestamp(MOMENT) == "2025-10-13T13:28:03"
    assert naming.group_id(MOMENT) == "2025-10-13_13_28_03"
    assert naming.parse_timestamp("2025-10-13_13_28_03") == MOMENT
    assert naming.parse_timestamp("2025-10-13T13:28:03") == MOMENT
    assert naming.date_dir("2025-10-13T23:59:59") == "2025-10-13"


def test_subband_file_names():
    assert naming.subband_filename(MOMENT, 3) == "2025-10-13T13:28:03_sb03.hdf5"
    assert naming.parse_subband_filename("2025-10-13T13:28:03_sb15.hdf5") == (MOMENT, 15)
    assert naming.parse_subband_filename("2025-10-13T13:28:03_sb15.hdf5.tmp") is None
    assert naming.parse_subband_filename("notes.txt") is None


def test_products_names():
    assert naming.ms_name(MOMENT) == "2025-10-13T13:28:03.ms"
    assert naming.caltable_name(MOMENT, "bpcal") == "2025-10-13T13:28:03_bpcal"
    assert naming.caltable_name(MOMENT, "2gcal").endswith("_2gcal")
    assert naming.calibrator_name("0834+555", MOMENT, 55.57) == "0834p555_132803_p55.57"
    with pytest.raises(ValueError, match="unknown calibration table kind"):
        naming.caltable_name(MOMENT, "xcal")
    with pytest.raises(ValueError, match="not a contimg timestamp"):
        naming.parse_timestamp("yesterday")
