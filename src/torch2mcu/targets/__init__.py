"""Build targets: the host (gcc + ctypes) and Cortex-M (cross-build + emulator)."""
