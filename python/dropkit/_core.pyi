"""Type stubs for dropkit._core, the compiled kernels (private; see dropkit.reference._kernels
for the NumPy twin of each function)."""
import numpy as np
import numpy.typing as npt

STREAM_VERSION: int
__version__: str
PARALLEL_CUTOFF: int
STREAMING_THRESHOLD_BYTES: int

def default_threads() -> int: ...
def simd_best() -> str: ...
def simd_available(name: str) -> bool: ...
def philox4x32_10(
    counter: npt.NDArray[np.uint32], key: npt.NDArray[np.uint32], simd: str = ""
) -> npt.NDArray[np.uint32]: ...
def bernoulli_apply(
    x: np.ndarray,
    out: np.ndarray,
    threshold: int,
    scale: float,
    seed: int,
    offset: int,
    threads: int = -1,
    simd: str = "",
    store: str = "auto",
) -> np.ndarray: ...
def bernoulli_mask(
    out: np.ndarray,
    n: int,
    threshold: int,
    seed: int,
    offset: int,
    packed: bool,
    threads: int = -1,
    simd: str = "",
) -> np.ndarray: ...
