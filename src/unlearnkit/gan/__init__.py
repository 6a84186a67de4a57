"""Unlearning in GANs: the bundled DCGAN-style miniature, Adapt-then-Unlearn and its metrics."""
