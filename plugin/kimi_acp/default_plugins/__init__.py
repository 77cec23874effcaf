"""Built-in behaviour, implemented with the same hooks third-party plugins use."""
