"""Beyond one machine (issue 15): evaluation fan-out as Ray tasks, training sweeps with Ray Tune."""
