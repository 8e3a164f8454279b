"""Runs a host-built model library in a child process (stdlib only, run as a plain script).

A generated folder is code: its library may crash, or do anything at load time. The parent
(host.py) therefore never loads it; this script does, in a separate process, and talks over
pipes:

    argv: LIBRARY ELEM_BYTES N EXPECTED_INPUT_SIZE EXPECTED_OUTPUT_SIZE
    stdin: N * input_size * ELEM_BYTES bytes; stdout: status (int32) + N * output_size elements

Buffer sizes come from the compiled library itself (t2m_host_sizes), never from JSON; when they
differ from what the parent expects, the script says so on stderr and exits with SIZE_MISMATCH.
"""
import ctypes
import struct
import sys

SIZE_MISMATCH = 3


def main() -> int:
    lib_path, elem, n, want_in, want_out = sys.argv[1], *map(int, sys.argv[2:6])
    lib = ctypes.CDLL(lib_path)
    sizes = (ctypes.c_long * 2)()
    lib.t2m_host_sizes(sizes)
    n_in, n_out = sizes[0], sizes[1]
    if (n_in, n_out) != (want_in, want_out):
        sys.stderr.write(f"the compiled library takes {n_in} input and {n_out} output values; "
                         f"the folder's manifest says {want_in} and {want_out}\n")
        return SIZE_MISMATCH
    data = sys.stdin.buffer.read(n * n_in * elem)
    if len(data) != n * n_in * elem:
        sys.stderr.write("short input\n")
        return SIZE_MISMATCH
    inp = ctypes.create_string_buffer(data, len(data))
    out = ctypes.create_string_buffer(n * n_out * elem)
    fn = lib.t2m_host_run_batch
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    status = fn(n, inp, out)
    sys.stdout.buffer.write(struct.pack("<i", status) + out.raw)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
