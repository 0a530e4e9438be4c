"""The validation cases, one module each."""
