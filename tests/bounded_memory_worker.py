"""Run a tool with its address space capped at what this process maps now plus LIMIT_MIB (RLIMIT_AS).

    python tests/bounded_memory_worker.py LIMIT_MIB TOOL.py [ARGS ...]

torch, h5py and NumPy are imported before the cap (their own mappings are not the input's), so a
loader that believed a hostile size fails with MemoryError here instead of exhausting the machine.
"""
import resource
import runpy
import sys

import h5py  # noqa: F401
import numpy  # noqa: F401
import torch  # noqa: F401


def mapped_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


if __name__ == "__main__":
    limit = mapped_bytes() + int(sys.argv[1]) * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
