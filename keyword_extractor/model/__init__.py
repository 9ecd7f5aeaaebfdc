"""The model and its directory: every training option (`TrainConfig`), how text becomes ids, the base
model (hub, directory or the offline tiny profile), grounded and greedy decoding, int8 layers and
the span selector that travels with the weights.
"""
