"""The simulated telescope: DSA-110 UVH5 groups from a sky of point sources."""
