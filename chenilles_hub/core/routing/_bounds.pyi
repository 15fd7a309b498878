"""The router's compiled bound pass (``_bounds.c``; see :mod:`.bounds`)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_Ints = npt.NDArray[np.int32]
_Floats = npt.NDArray[np.float64]

def bounds(
    indptr: _Ints,
    indices: _Ints,
    rev_indptr: _Ints,
    rev_indices: _Ints,
    rev_entry: _Ints,
    code: _Ints,
    base: _Floats,
    ppm: _Floats,
    loss: _Floats,
    cap_value: _Floats,
    valid_until: _Floats,
    asset_price: _Floats,
    heads: Sequence[int],
    v0: float,
    now: float,
    target: int,
    stretch: float,
    out: _Floats,
    /,
) -> tuple[int, int]: ...
