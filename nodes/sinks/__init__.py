"""Sinks: LSL outlets, recorders, scorers."""
