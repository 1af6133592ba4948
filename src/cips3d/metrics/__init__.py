"""Image-set metrics. SWD (sliced Wasserstein distance on Laplacian-pyramid patches) needs no network."""
