"""Loaded models and what they draw: GANModel, sampling, translating, upscaling, export."""
