"""UVH5 group -> CASA Measurement Set conversion (plain Python, no Dagster)."""
