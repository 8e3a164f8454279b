"""Fixed-point arithmetic (the Python twin of the C requantize) and quantization parameter choice."""
