"""Sources: replay of recordings, synthetic generators, LSL inlets."""
