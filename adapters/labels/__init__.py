"""labels adapters."""
