"""Decoders: linear, spiking (SNN_Streaming, SNN_3D) and baseline (ANN, LSTM) velocity decoders."""
