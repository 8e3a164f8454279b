"""Deep Compression (torch side): magnitude pruning with masks, schedules, sensitivity
analysis, a sparsity search under an accuracy budget, optional quantization-aware fine-tuning,
weight sharing, and the search that fits flash and RAM budgets as measured (compress_within);
independent trials in worker processes or on Ray (Trials)."""
from torch2mcu.compress.api import (CompressResult, compress, compress_to_folder,
                                    compress_within, export_pruned, int8_accuracy,
                                    one_shot_prune)
from torch2mcu.compress.program import ProgramModule, compress_program_to_folder
from torch2mcu.compress.trials import Trials

__all__ = ["CompressResult", "ProgramModule", "compress", "compress_program_to_folder",
           "compress_to_folder", "compress_within", "export_pruned", "int8_accuracy",
           "one_shot_prune", "Trials"]
