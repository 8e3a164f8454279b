"""Executing an ir.Graph in Python: the float reference and the integer reference (the truth)."""
from torch2mcu.reference.executor import run_float, run_int8

__all__ = ["run_float", "run_int8"]
