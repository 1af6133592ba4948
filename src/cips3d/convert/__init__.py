"""Weight conversion between the official CIPS-3D layout and ours."""
