"""Filters and transforms: Bessel filtering, event binning."""
