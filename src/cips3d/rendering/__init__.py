"""Rendering math as pure functions over tensors: cameras, rays, depth sampling, compositing."""
