"""Text adapters: embedders that turn messages into vectors."""
