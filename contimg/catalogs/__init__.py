"""Reference catalogues: the VLA calibrator list and NVSS-format source tables."""
