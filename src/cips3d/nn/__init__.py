"""Reusable layers: FiLM-sine (NeRF) and modulated linear (INR), with the official init rules."""

from cips3d.nn.film import FiLMSine
from cips3d.nn.modulated import ModulatedLinear, modulate_weight

__all__ = ["FiLMSine", "ModulatedLinear", "modulate_weight"]
