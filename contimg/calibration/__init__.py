"""Calibration: sky model into MODEL_DATA, flagging, bandpass and gain solves, the
registry of tables with validity windows, and applying them (plain Python, no Dagster)."""
