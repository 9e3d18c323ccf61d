"""Data: readers for the formats users have, validation, and the built-in generated suite."""
from .formats import DataFormatError, Dataset, detect_format, load_dataset, parse_hh_transcript, split_hh

__all__ = ["DataFormatError", "Dataset", "detect_format", "load_dataset", "parse_hh_transcript", "split_hh"]
