"""Ingest: watching the incoming directory and grouping subband files."""
