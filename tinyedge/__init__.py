"""tinyedge: take a trained model to a measured result on a microcontroller."""

__version__ = "0.1.0"
