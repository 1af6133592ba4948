"""Training: DiffAugment (`augment`), the GAN losses with R1 (`losses`), and the steps built on them."""
