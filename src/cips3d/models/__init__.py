"""The networks: mapping (z -> w), NeRF field (points -> feature, sigma), INR decoder (feature -> rgb)."""
