"""CasADi Functions evaluated through preallocated numpy buffers, compiled to C once when a compiler is present.

A Python call of a CasADi Function with numpy arguments costs ~0.4 ms in conversions for an agent's linearization;
through `Function.buffer()` and a compiled shared library it costs ~20 µs (bench/nonlinear.py measures it). The
library is cached by the hash of its generated source in $DMPC_CASADI_CACHE (else ~/.cache/dmpc_ros/casadi), so
agents with the same structure, and later runs, reuse it. A build takes ~5 s for an agent's linearization (31 k
instructions) but grows faster than the code (a 3-agent centralized one, 171 k: 84 s), so Functions above
MAX_COMPILED_INSTRUCTIONS, and every Function when no C compiler is found, run on CasADi's virtual machine (~10×
slower, same numbers).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import casadi as ca
import numpy as np

COMPILE_FLAGS = ("-O1", "-shared", "-fPIC")
MAX_COMPILED_INSTRUCTIONS = 60_000


def cache_directory() -> Path:
    return Path(os.environ.get("DMPC_CASADI_CACHE") or Path.home() / ".cache" / "dmpc_ros" / "casadi")


def compiler() -> str | None:
    """The C compiler used for CasADi code (None: none found, the virtual machine evaluates)."""
    return shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")


def compiled(function: ca.Function) -> ca.Function:
    """`function` as a shared library built from its generated C code (cached by the code's hash)."""
    cc = compiler()
    if cc is None:
        return function
    name = function.name()
    generator = ca.CodeGenerator(f"{name}.c", {"with_header": False})
    generator.add(function)
    source = generator.dump()
    digest = hashlib.sha256((source + " ".join(COMPILE_FLAGS)).encode()).hexdigest()[:16]
    library = cache_directory() / f"{name}-{digest}.so"
    if not library.is_file():
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
            code, built = Path(scratch) / f"{name}.c", Path(scratch) / f"{name}.so"
            code.write_text(source)
            subprocess.run([cc, *COMPILE_FLAGS, str(code), "-o", str(built), "-lm"], check=True,
                           capture_output=True)
            os.replace(built, library)   # atomic: concurrent agents may build the same library
    return ca.external(name, str(library))


class BufferedFunction:
    """Calls of a CasADi SX Function with numpy vectors in, dense numpy arrays out (copies), no conversions."""

    def __init__(self, function: ca.Function, compile: bool = True) -> None:
        inputs = function.sx_in()
        dense = ca.Function(function.name(), inputs, [ca.densify(v) for v in function.call(inputs)])
        self.function = compiled(dense) if compile and dense.n_instructions() <= MAX_COMPILED_INSTRUCTIONS \
            else dense
        self._buffer, self._trigger = self.function.buffer()
        self._inputs = [np.zeros(self.function.nnz_in(i)) for i in range(self.function.n_in())]
        self._outputs = [np.zeros((self.function.size2_out(i), self.function.size1_out(i)))
                         for i in range(self.function.n_out())]
        for i, array in enumerate(self._inputs):
            self._buffer.set_arg(i, memoryview(array))
        for i, array in enumerate(self._outputs):
            self._buffer.set_res(i, memoryview(array))

    def __call__(self, *args: np.ndarray) -> list[np.ndarray]:
        for buffer, value in zip(self._inputs, args, strict=True):
            buffer[:] = np.ravel(value)
        self._trigger()
        return [array.T.copy() for array in self._outputs]   # CasADi is column-major
