"""Weight encodings: dense, compressed rows (CSR), relative indices (REL); their bytes and costs."""
from torch2mcu.encodings.sparse import (Encoding, conv_offsets, decode, encode, encode_csr,
                                        encode_dense, encode_rel)

__all__ = ["Encoding", "conv_offsets", "decode", "encode", "encode_csr", "encode_dense",
           "encode_rel"]
