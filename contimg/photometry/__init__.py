"""Photometry: forced and blind measurements of every image, master sources, variability."""
