"""ForgeML: real data to a trained, evaluated, compared and reported model with one `dvc repro`."""

__version__ = "0.1.0"
