"""C code generation: literals, the emitter, and the self-contained output folder."""
