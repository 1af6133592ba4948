"""Files: generator checkpoints (ours and official) and images."""
