"""A fixed-size float64 history for live charts: O(1) appends, the window read back as one slice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class RingBuffer:
    """The last ``capacity`` rows of ``columns`` floats, oldest first.

    Every row is stored twice, at ``i`` and ``i + capacity`` of a double-length array, so the
    window in time order is always one contiguous slice of it: ``view()`` copies nothing, and an
    append writes two rows whatever the fill.

    A view shares the buffer's memory: once the buffer is full, later appends overwrite a view's
    oldest rows with newer ones. Read it (or copy it) before the next append; never hand it to
    something that keeps it, such as a plot item.
    """

    def __init__(self, capacity: int, columns: int) -> None:
        if capacity < 1 or columns < 1:
            raise ValueError(f"capacity and columns must be positive, got {capacity} and {columns}")
        self._capacity = capacity
        self._columns = columns
        self._data: npt.NDArray[np.float64] = np.zeros((2 * capacity, columns), dtype=np.float64)
        self._next = 0  # slot of the next append, 0 <= _next < capacity
        self._size = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def columns(self) -> int:
        return self._columns

    def __len__(self) -> int:
        return self._size

    def append(self, row: Sequence[float]) -> None:
        """Add a row, dropping the oldest when full."""
        if len(row) != self._columns:
            raise ValueError(f"a row has {self._columns} values, got {len(row)}")
        slot = self._next
        self._data[slot] = row
        self._data[slot + self._capacity] = row
        self._next = slot + 1 if slot + 1 < self._capacity else 0
        if self._size < self._capacity:
            self._size += 1

    def view(self) -> npt.NDArray[np.float64]:
        """The rows in time order, shape ``(len(self), columns)``: a read-only slice, not a copy."""
        # Not full: rows 0.._size-1 in order. Full: the slot after the newest starts the window.
        start = 0 if self._size < self._capacity else self._next
        window = self._data[start : start + self._size]
        window.flags.writeable = False
        return window

    def last(self) -> npt.NDArray[np.float64]:
        """The newest row (read-only); IndexError when empty."""
        if self._size == 0:
            raise IndexError("last() of an empty RingBuffer")
        newest: npt.NDArray[np.float64] = self._data[self._next - 1 + self._capacity]
        newest.flags.writeable = False
        return newest

    def clear(self) -> None:
        self._next = 0
        self._size = 0
