"""Load and profiling tools: `python -m bench` (see bench/README.md)."""
