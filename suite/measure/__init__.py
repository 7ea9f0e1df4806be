"""Measurement: timing, statistics, memory and size, accuracy and agreement.

Knows nothing of models or backends: it measures callables, tensors and modules.
"""
