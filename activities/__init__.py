"""Activities: all of Tocsin's I/O (channels, config, metrics, hooks)."""
