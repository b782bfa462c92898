"""Benchmarks of keras_biprune: trained reference models and the scripts that measure them."""
