"""Hand-written GPU kernels (Triton), each an optional replacement for a PyTorch path it is tested against."""
