"""Imaging: one primary-beam-corrected image per group, with its quality and provenance."""
