"""Benchmarks (not tests, not shipped): each prints its figures and, last, one JSON line.

Run from the repository root: `.venv/bin/python -m benchmarks conversion --size full`.
"""
