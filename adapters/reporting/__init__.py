"""Reports: figures, tables and documents written from domain values."""
