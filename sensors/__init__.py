"""Dagster sensors: the demo telescope now; incoming files, run failures and calibration later."""
