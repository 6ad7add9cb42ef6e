"""Type stubs for dropkit._core, the compiled kernels (private; see dropkit.reference._kernels
for the NumPy twin of each function)."""
import numpy as np
import numpy.typing as npt
from typing import Sequence

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

# ---- the variants' kernels (docs/rng.md sections 8-15); pstrides None means C order of x ------
def bernoulli_apply_nd(
    x: np.ndarray, out: np.ndarray, threshold: int | np.ndarray, scale: float | np.ndarray, seed: int,
    offset: int, pstrides: Sequence[int] | None = None, threads: int = -1, simd: str = "",
) -> np.ndarray: ...
def alpha_apply(
    x: np.ndarray, out: np.ndarray, threshold: int, a: float, b: float, fill: float, seed: int, offset: int,
    pstrides: Sequence[int] | None = None, threads: int = -1, simd: str = "",
) -> np.ndarray: ...
def gaussian_apply(
    x: np.ndarray, out: np.ndarray, sigma: float, seed: int, offset: int,
    pstrides: Sequence[int] | None = None, threads: int = -1, simd: str = "",
) -> np.ndarray: ...
def concrete_apply(
    x: np.ndarray, out: np.ndarray, logit: float, inv_temperature: float, scale: float, seed: int, offset: int,
    pstrides: Sequence[int] | None = None, threads: int = -1, simd: str = "",
) -> np.ndarray: ...
def concrete_backward(
    grad: np.ndarray, x: np.ndarray, dx: np.ndarray, logit: float, inv_temperature: float, scale: float,
    p: float, seed: int, offset: int, threads: int = -1, simd: str = "",
) -> tuple[np.ndarray, float]: ...
def deterministic_sum(values: npt.NDArray[np.float64], offset: int, threads: int = -1, simd: str = "") -> float: ...

# ---- the compiled fast path: the common call in one step, or None (then the Python API's general
# path runs and raises every error); threads and SIMD target are those pushed by set_fast_state.
def set_fast_state(threads: int, simd: str) -> None: ...
def fast_state() -> tuple[int, str]: ...
def dropout_fast(
    x: object, rate: object, seed: object, offset: object, training: object, inverted: object, out: object
) -> np.ndarray | None: ...
def variant_fast(
    kind: int, x: object, rate: object, seed: object, offset: object, noise_shape: object, out: object
) -> np.ndarray | None: ...
def rates_fast(
    x: object, rate: object, seed: object, offset: object, noise_shape: object, out: object
) -> np.ndarray | None: ...
def concrete_fast(
    x: object, logit: object, temperature: object, seed: object, offset: object, out: object
) -> np.ndarray | None: ...
def noise_count(shape: object, noise_shape: object) -> int | None: ...
def gaussian_noise_apply(
    x: np.ndarray, out: np.ndarray, stddev: float, seed: int, offset: int,
    pstrides: Sequence[int] | None = None, threads: int = -1, simd: str = "",
) -> np.ndarray: ...
def drop_block_apply(
    x: np.ndarray, out: np.ndarray, threshold: int, k: Sequence[int], seed: int, offset: int, batchwise: bool,
    channels_last: bool, threads: int = -1, simd: str = "",
) -> np.ndarray: ...
