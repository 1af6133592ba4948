"""Using a trained generator: per-seed sampling (videos, meshes and blending come later)."""
