"""contimg: the DSA-110 continuum-imaging platform (science code, no Dagster)."""
