"""Hourly and daily linear mosaics of the group images (plain Python; the mosaic assets
call `contimg.mosaics.stage`): the grid (`grid.py`), a common restoring beam
(`restoring_beam.py`), the weighted combination (`combine.py`), the exact daily roll-up of
hourly mosaics (`daily.py`) and the products (`stage.py`)."""
