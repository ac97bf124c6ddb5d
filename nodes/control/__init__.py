"""Collision-avoidance control: CRNN / quantised / BIF spiking controllers and the robot simulator."""
