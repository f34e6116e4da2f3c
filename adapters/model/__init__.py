"""model adapters."""
