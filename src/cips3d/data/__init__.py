"""Training data: image folders and StyleGAN2-ADA zips as uint8 tensors, an infinite resumable sampler,
and the tool that packs a folder into a zip at one resolution (`cips3d dataset`)."""
