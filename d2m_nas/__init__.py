"""d2m-nas: neural architecture search driven by Data-to-Model distillation."""

__version__ = "0.1.0"
