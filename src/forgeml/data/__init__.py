"""Data sources (one module each), validation, and the datamodule that feeds training."""
