"""Contour boxes of every threshold of a uint8 map from three passes over its pixels.

``cv2.findContours(q >= c, RETR_TREE, ...)`` returns one outer border per 8-connected
foreground component and one hole border per 4-connected background component that does not
touch the image border. The bounding rectangle of an outer border is the component's; that of a
hole border is the hole's grown by one pixel on each side (the border runs over the foreground
pixels around the hole). As the cutoff ``c`` falls, components only appear, grow and merge, and
holes do so as it rises; so a union-find over the pixels in value order (a max-tree for the
foreground, a min-tree for the background) yields the boxes of every cutoff without tracing any
contour. A tree node is a box together with the range of cutoffs over which some component has
exactly that box; a node ends only when its component's box changes.

The largest contour (``cv2.contourArea``) is always the outer border of a component that lies in
no hole: the area of a border is that of the region it encloses, and a hole's region lies inside
its component's, an island's inside its hole's. That region is the component with its holes
filled, the 8-connected components of ``{m >= c}`` where ``m`` is the map with every basin
filled (each pixel raised to the lowest level at which a 4-path reaches the image border). Its
area is the sum over 2×2 windows of ``max(0, n - 2) / 2``, with ``n`` the window's pixels in the
filled component (a full window lies inside the polygon through the border pixels' centres, a
window with three pixels half inside, others not at all). OpenCV lists such components in
reverse raster order of their first pixel, so among equal areas the component whose first pixel
comes last wins. ``tests/test_component_tree.py`` checks all of this against ``cv2.findContours``
and ``cv2.contourArea`` on thousands of maps.

Three passes per map: a priority flood from the border finds the basin pixels (``q < m``); the
foreground sweep runs the union-find of ``q >= c`` and, in the same pass, one of ``m >= c`` over
its components and the basin pixels; the hole sweep runs over the basin pixels only.
:func:`cutoff_ious` runs them and the IoUs against the ground-truth boxes in one compiled call
(numba, cached on disk; see :func:`warm_up`); :func:`level_boxes` lists the nodes. Pixels are
addressed in the bounding rectangle of the map's nonzero pixels, padded with a one-pixel frame
of zeros so that no neighbour lookup needs a bounds check. Per-pixel work stays inside the
sweeps' loops (small helpers the compiler inlines; a call that is not inlined increments and
decrements the reference count of every array it is passed), and only merges and the per-value
largest-contour update call out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["CutoffIous", "LevelBoxes", "cutoff_ious", "level_boxes", "warm_up"]

NUM_CUTOFFS = 257
"""Cutoffs ``c`` index arrays ``0 … 256``: the binary image is ``q >= c`` (``c = 256`` is empty)."""

@dataclass
class LevelBoxes:
    """Contour boxes of ``q >= c`` for every cutoff ``c`` in ``1 … 256``.

    ``boxes[k]`` (``(x0, y0, x1, y1)``, clipped as ``cv2.boundingRect`` boxes are in SPEC §7.3)
    is a contour of every binary image with cutoff in ``first_cutoff[k] … last_cutoff[k]``;
    cutoffs whose binary image is empty have the single box ``(0, 0, 0, 0)``. ``num_boxes[c]``
    and ``largest[c]`` are the number of boxes and the largest-contour box of cutoff ``c``.
    """

    boxes: np.ndarray
    first_cutoff: np.ndarray
    last_cutoff: np.ndarray
    num_boxes: np.ndarray
    largest: np.ndarray


def _arc_table(ring: int, touching: bool) -> np.ndarray:
    """Row ``mask``: ``[n, k1 … k4]``, the ``n`` ring positions of the entered neighbours in
    ``mask`` whose components have to be looked up. On a ring whose consecutive neighbours
    touch (8-connectivity) a run of entered neighbours lies in one component, so only the first
    of each run is looked up; otherwise every entered neighbour is."""
    table = np.zeros((1 << ring, 5), dtype=np.int8)
    for mask in range(1 << ring):
        present = [(mask >> k) & 1 for k in range(ring)]
        if mask == (1 << ring) - 1 and touching:
            starts = [0]
        elif touching:
            starts = [k for k in range(ring) if present[k] and not present[k - 1]]
        else:
            starts = [k for k in range(ring) if present[k]]
        table[mask, 0] = len(starts)
        table[mask, 1:1 + len(starts)] = starts
    return table


def _window_gain_table() -> np.ndarray:
    """Entry ``mask`` (entered 8-neighbours in ring order N NE E SE S SW W NW): twice the
    polygon area an entering pixel adds to its filled component, one per 2×2 window around it
    that already holds two or three pixels (the window's ``max(0, n - 2)`` grows by one)."""
    gain = np.zeros(256, dtype=np.int8)
    windows = ((7, 0, 6), (0, 1, 2), (6, 5, 4), (2, 3, 4))
    for mask in range(256):
        gain[mask] = sum(sum((mask >> k) & 1 for k in window) >= 2 for window in windows)
    return gain


# Read-only tables; the compiled functions embed them as constants.
_ARCS_8 = _arc_table(8, touching=True)
_ARCS_4 = _arc_table(4, touching=False)
_WINDOW_GAIN = _window_gain_table()

# Columns of a component's state row: its box, size and open node; its set in the filled
# union-find (parent, size) and, for a root of that set, the filled component's box, twice its
# polygon area, its first pixel and the last value at which it changed.
(_X0, _Y0, _X1, _Y1, _SIZE, _OPENED, _LINK, _LINKED, _FX0, _FY0, _FX1, _FY1, _AREA, _FIRST,
 _TOUCHED) = range(15)
_COLUMNS = 16  # 64-byte rows

# In the foreground sweep, a basin pixel that has entered the filled map's union-find but not
# yet ``q >= c`` holds ``_FILLED_ONLY - id`` in the parent array (``id`` its filled element),
# below every other code (``-1`` not entered, ``-2 - id`` a root, ``>= 0`` a parent pixel).
_FILLED_ONLY = -(1 << 30)
_LOWEST_BIT = np.array([0] + [(m & -m).bit_length() - 1 for m in range(1, 256)], dtype=np.int8)


@numba.njit(cache=True, nogil=True)
def _crop(q: np.ndarray) -> tuple[np.ndarray, int, int, int, int]:
    """The bounding rectangle of the nonzero pixels of ``q`` (its first pixel if there are
    none) with a one-pixel frame of zeros, flattened; the padded row length; the rectangle's
    top-left corner ``(y, x)``; the largest value of ``q``.

    Pixels outside the rectangle are zero, below every cutoff, and reach the image border
    through zeros, so each contour of the rectangle is one of the map's, moved by the corner.
    """
    height, width = q.shape
    y0, x0, y1, x1 = height, width, -1, -1
    peak = 0
    for y in range(height):
        for x in range(width):
            if q[y, x]:
                peak = max(peak, q[y, x])
                y0 = min(y0, y)
                y1 = max(y1, y)
                x0 = min(x0, x)
                x1 = max(x1, x)
    if y1 < 0:
        y0 = x0 = y1 = x1 = 0
    row = x1 - x0 + 3
    level = np.zeros((y1 - y0 + 3) * row, dtype=np.uint8)
    for y in range(y0, y1 + 1):
        start = (y - y0 + 1) * row + 1 - x0
        for x in range(x0, x1 + 1):
            level[start + x] = q[y, x]
    return level, row, y0, x0, peak


@numba.njit(cache=True, nogil=True)
def _sort_pixels(key: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pixels`` sorted by ``key`` (stable) and the start ``starts[v]`` of each key value in
    that order (``starts[v + 1]`` its end)."""
    starts = np.zeros(NUM_CUTOFFS + 1, dtype=np.int32)
    for pixel in pixels:
        starts[key[pixel] + 1] += 1
    for value in range(1, NUM_CUTOFFS + 1):
        starts[value] += starts[value - 1]
    fill = starts.copy()
    order = np.empty(len(pixels), dtype=np.int32)
    for pixel in pixels:
        order[fill[key[pixel]]] = pixel
        fill[key[pixel]] += 1
    return order, starts


@numba.njit(cache=True, nogil=True)
def _sort_nonzero(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of value ``v >= 1`` sorted by value and the start of each value (as
    :func:`_sort_pixels`)."""
    starts = np.zeros(NUM_CUTOFFS + 1, dtype=np.int32)
    for pixel in range(level.size):
        starts[level[pixel] + 1] += 1
    starts[1] = 0
    for value in range(2, NUM_CUTOFFS + 1):
        starts[value] += starts[value - 1]
    fill = starts.copy()
    order = np.empty(starts[NUM_CUTOFFS - 1], dtype=np.int32)
    for pixel in range(level.size):
        value = level[pixel]
        if value:
            order[fill[value]] = pixel
            fill[value] += 1
    return order, starts


@numba.njit(cache=True, nogil=True)
def _basins(level: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
    """The basin pixels of the padded map, those below their filled level ``m`` (the lowest
    level at which a 4-path from the pixel reaches the frame), sorted by ``m``, and the start
    of each level in that order (as :func:`_sort_pixels`).

    A priority flood from the border: it takes pixels in rising filled level.
    """
    height = level.size // row - 2
    width = row - 2
    seen = np.ones(level.size, dtype=np.bool_)
    head = np.full(NUM_CUTOFFS - 1, -1, dtype=np.int32)
    following = np.empty(level.size, dtype=np.int32)
    for y in range(1, height + 1):
        for x in range(1, width + 1):
            pixel = y * row + x
            if y == 1 or x == 1 or y == height or x == width:
                following[pixel] = head[level[pixel]]
                head[level[pixel]] = pixel
            else:
                seen[pixel] = False
    basin = np.empty(height * width, dtype=np.int32)
    starts = np.zeros(NUM_CUTOFFS + 1, dtype=np.int32)
    num_basin = 0
    for value in range(NUM_CUTOFFS - 1):
        starts[value] = num_basin
        while head[value] >= 0:
            pixel = np.int64(head[value])
            head[value] = following[pixel]
            if level[pixel] != value:
                basin[num_basin] = pixel
                num_basin += 1
            for neighbour in (pixel - row, pixel - 1, pixel + 1, pixel + row):
                if seen[neighbour]:
                    continue
                seen[neighbour] = True
                raised = max(level[neighbour], value)
                following[neighbour] = head[raised]
                head[raised] = neighbour
    starts[NUM_CUTOFFS - 1:] = num_basin
    return basin[:num_basin], starts


@numba.njit(cache=True, nogil=True)
def _interval_max(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``(257,)`` maximum of ``values[k]`` over the ``k`` whose cutoff range
    ``first[k] … last[k]`` holds each cutoff (``-inf`` where none does)."""
    result = np.full(NUM_CUTOFFS, -np.inf)
    for k in range(len(values)):
        for cutoff in range(first[k], last[k] + 1):
            result[cutoff] = max(result[cutoff], values[k])
    return result


@numba.njit(cache=True, nogil=True)
def _best_iou(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> tuple[float, float]:
    """Best IoU of a box with any of the ``gt`` boxes, and its IoU with the first (SPEC §7.4;
    the same float operations as :func:`wsol.metrics.boxes.iou_matrix`)."""
    best = -np.inf
    first = -np.inf
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    for k in range(gt.shape[0]):
        inter_w = max(0, min(x1, gt[k, 2]) - max(x0, gt[k, 0]) + 1)
        inter_h = max(0, min(y1, gt[k, 3]) - max(y0, gt[k, 1]) + 1)
        inter = inter_w * inter_h
        union = area + (gt[k, 2] - gt[k, 0] + 1) * (gt[k, 3] - gt[k, 1] + 1) - inter
        iou = inter / union if union > 0 else 0.0
        if k == 0:
            first = iou
        best = max(best, iou)
    return best, first


@numba.njit(cache=True, nogil=True)
def _end_node(nodes: np.ndarray, num_nodes: int, frame: tuple, state: np.ndarray, ident: int,
              first: int, last: int) -> int:
    """Write the node of component ``ident`` over cutoffs ``first … last`` (none if the range
    is empty) as row ``num_nodes`` of ``nodes``; return the number of nodes.

    ``frame`` is ``(inset_x, inset_y, grow_x, grow_y, width, height)``: the node's
    ``cv2.boundingRect`` box is the component's extent in the cropped, padded map moved by
    ``-inset`` at the top left and ``grow`` at the bottom right, clipped to the map.
    """
    if first > last:
        return num_nodes
    inset_x, inset_y, grow_x, grow_y, width, height = frame
    nodes[num_nodes, 0] = state[ident, _X0] - inset_x
    nodes[num_nodes, 1] = state[ident, _Y0] - inset_y
    nodes[num_nodes, 2] = min(state[ident, _X1] + grow_x, width - 1)
    nodes[num_nodes, 3] = min(state[ident, _Y1] + grow_y, height - 1)
    nodes[num_nodes, 4] = first
    nodes[num_nodes, 5] = last
    return num_nodes + 1


@numba.njit(cache=True, nogil=True)
def _end_open_node(nodes: np.ndarray, num_nodes: int, frame: tuple, state: np.ndarray,
                   ident: int, value: int, falling: bool) -> int:
    """End the open node of component ``ident`` while ``value`` enters."""
    began = state[ident, _OPENED]
    state[ident, _OPENED] = -1
    if falling:
        return _end_node(nodes, num_nodes, frame, state, ident, value + 1, began)
    return _end_node(nodes, num_nodes, frame, state, ident, began, value)


@numba.njit(cache=True, nogil=True)
def _root(parent: np.ndarray, pixel: int) -> int:
    """Root pixel of the component of the entered ``pixel`` (path halving).

    ``parent`` holds ``-1`` for pixels not entered yet, ``-2 - id`` for the root of component
    ``id`` and the parent pixel otherwise.
    """
    while True:
        up = parent[pixel]
        if up < 0:
            return pixel
        top = parent[up]
        if top < 0:
            return up
        parent[pixel] = top
        pixel = top


@numba.njit(cache=True, nogil=True)
def _grows(state: np.ndarray, ident: int, x: int, y: int, bound: int) -> bool:
    """Whether ``(x, y)`` lies outside the box of component ``ident`` while a node is open
    that began before cutoff ``bound`` (one that began at ``bound`` would end empty)."""
    began = state[ident, _OPENED]
    return began >= 0 and began != bound and (
        x < state[ident, _X0] or y < state[ident, _Y0] or x > state[ident, _X1] or
        y > state[ident, _Y1])


@numba.njit(cache=True, nogil=True)
def _start(parent: np.ndarray, state: np.ndarray, ident: int, pixel: int, x: int, y: int,
           bound: int) -> None:
    """Make ``pixel`` component ``ident`` of its own, its node open from cutoff ``bound``."""
    parent[pixel] = -2 - ident
    state[ident, _X0] = x
    state[ident, _Y0] = y
    state[ident, _X1] = x
    state[ident, _Y1] = y
    state[ident, _SIZE] = 1
    state[ident, _OPENED] = bound


@numba.njit(cache=True, nogil=True)
def _join(parent: np.ndarray, state: np.ndarray, ident: int, root: int, pixel: int, x: int,
          y: int, bound: int) -> None:
    """Add the entering ``pixel`` to component ``ident`` (root pixel ``root``): its box grows
    to hold it, and a node opens at cutoff ``bound`` unless one is open."""
    parent[pixel] = root
    state[ident, _SIZE] += 1
    state[ident, _X0] = min(state[ident, _X0], x)
    state[ident, _Y0] = min(state[ident, _Y0], y)
    state[ident, _X1] = max(state[ident, _X1], x)
    state[ident, _Y1] = max(state[ident, _Y1], y)
    if state[ident, _OPENED] < 0:
        state[ident, _OPENED] = bound


@numba.njit(cache=True, nogil=True)
def _same_box(state: np.ndarray, ident: int, x0: int, y0: int, x1: int, y1: int) -> bool:
    return state[ident, _X0] == x0 and state[ident, _Y0] == y0 and \
        state[ident, _X1] == x1 and state[ident, _Y1] == y1


@numba.njit(cache=True, nogil=True)
def _merge(parent: np.ndarray, state: np.ndarray, root: int, other: int, value: int,
           falling: bool, nodes: np.ndarray, num_nodes: int, frame: tuple) -> tuple[int, int]:
    """Join the components of root pixels ``root`` and ``other`` while ``value`` enters.

    A node whose box is the joined box carries on (one at most); the other open nodes end.
    Falling, the filled sets of the two join as well. Returns the root pixel of the joined
    component and the number of nodes.
    """
    ident = -2 - parent[root]
    other_ident = -2 - parent[other]
    x0 = min(state[ident, _X0], state[other_ident, _X0])
    y0 = min(state[ident, _Y0], state[other_ident, _Y0])
    x1 = max(state[ident, _X1], state[other_ident, _X1])
    y1 = max(state[ident, _Y1], state[other_ident, _Y1])
    carried = -1
    if state[ident, _OPENED] >= 0 and _same_box(state, ident, x0, y0, x1, y1):
        carried = state[ident, _OPENED]
        state[ident, _OPENED] = -1
    elif state[other_ident, _OPENED] >= 0 and _same_box(state, other_ident, x0, y0, x1, y1):
        carried = state[other_ident, _OPENED]
        state[other_ident, _OPENED] = -1
    if state[ident, _OPENED] >= 0:
        num_nodes = _end_open_node(nodes, num_nodes, frame, state, ident, value, falling)
    if state[other_ident, _OPENED] >= 0:
        num_nodes = _end_open_node(nodes, num_nodes, frame, state, other_ident, value,
                                   falling)
    if state[ident, _SIZE] < state[other_ident, _SIZE]:
        root, other = other, root
        ident, other_ident = other_ident, ident
    parent[other] = root
    state[ident, _SIZE] += state[other_ident, _SIZE]
    state[ident, _X0] = x0
    state[ident, _Y0] = y0
    state[ident, _X1] = x1
    state[ident, _Y1] = y1
    state[ident, _OPENED] = carried
    if falling:
        _filled_union(state, _filled_root(state, ident), _filled_root(state, other_ident))
    return root, num_nodes


@numba.njit(cache=True, nogil=True)
def _filled_start(state: np.ndarray, ident: int, pixel: int, x: int, y: int) -> None:
    """Make ``ident`` a set of its own in the filled union-find, holding ``pixel``."""
    state[ident, _LINK] = ident
    state[ident, _LINKED] = 1
    state[ident, _FX0] = x
    state[ident, _FY0] = y
    state[ident, _FX1] = x
    state[ident, _FY1] = y
    state[ident, _AREA] = 0
    state[ident, _FIRST] = pixel
    state[ident, _TOUCHED] = -1


@numba.njit(cache=True, nogil=True)
def _filled_root(state: np.ndarray, ident: int) -> int:
    """Root of ``ident`` in the filled union-find (path halving)."""
    while state[ident, _LINK] != ident:
        top = state[state[ident, _LINK], _LINK]
        state[ident, _LINK] = top
        ident = top
    return ident


@numba.njit(cache=True, nogil=True)
def _filled_union(state: np.ndarray, a: int, b: int) -> int:
    """Join the filled sets of roots ``a`` and ``b``; return the root of the union."""
    if a == b:
        return a
    if state[a, _LINKED] < state[b, _LINKED]:
        a, b = b, a
    state[b, _LINK] = a
    state[a, _LINKED] += state[b, _LINKED]
    state[a, _FX0] = min(state[a, _FX0], state[b, _FX0])
    state[a, _FY0] = min(state[a, _FY0], state[b, _FY0])
    state[a, _FX1] = max(state[a, _FX1], state[b, _FX1])
    state[a, _FY1] = max(state[a, _FY1], state[b, _FY1])
    state[a, _AREA] += state[b, _AREA]
    state[a, _FIRST] = min(state[a, _FIRST], state[b, _FIRST])
    return a


@numba.njit(cache=True, nogil=True)
def _filled_add(state: np.ndarray, root: int, pixel: int, x: int, y: int, gain: int) -> None:
    """Add ``pixel`` (adding ``gain`` to twice the polygon area) to the filled set ``root``."""
    state[root, _FX0] = min(state[root, _FX0], x)
    state[root, _FY0] = min(state[root, _FY0], y)
    state[root, _FX1] = max(state[root, _FX1], x)
    state[root, _FY1] = max(state[root, _FY1], y)
    state[root, _AREA] += gain
    state[root, _FIRST] = min(state[root, _FIRST], pixel)


@numba.njit(cache=True, nogil=True)
def _touch(state: np.ndarray, touched: np.ndarray, num_touched: int, root: int, value: int
           ) -> int:
    """List filled root ``root`` as changed at ``value`` (once); return the list's length.

    Branch-free, so that the compiler drops the reference counting of the inlined call.
    """
    fresh = state[root, _TOUCHED] != value
    touched[num_touched] = root
    state[root, _TOUCHED] = value
    return num_touched + fresh


@numba.njit(cache=True, nogil=True)
def _heap_before(heap: np.ndarray, i: int, j: int) -> bool:
    """Whether heap entry ``i`` ranks above entry ``j``: larger area, then later first pixel."""
    return heap[i, 0] > heap[j, 0] or (heap[i, 0] == heap[j, 0] and heap[i, 1] > heap[j, 1])


@numba.njit(cache=True, nogil=True)
def _heap_swap(heap: np.ndarray, i: int, j: int) -> None:
    for column in range(3):
        heap[i, column], heap[j, column] = heap[j, column], heap[i, column]


@numba.njit(cache=True, nogil=True)
def _largest_box(state: np.ndarray, touched: np.ndarray, num_touched: int, heap: np.ndarray,
                 size: int, frame: tuple, largest: np.ndarray) -> int:
    """Push the filled roots that changed (``touched``) onto the max-heap of
    ``(twice area, first pixel, id)`` rows, drop stale tops, and write the box of the top, the
    largest contour, to ``largest`` (``(x0, y0, x1, y1)``). Returns the heap's new size."""
    for index in range(num_touched):
        ident = touched[index]
        if state[ident, _LINK] != ident:
            continue
        heap[size, 0] = state[ident, _AREA]
        heap[size, 1] = state[ident, _FIRST]
        heap[size, 2] = ident
        child = size
        size += 1
        while child > 0 and _heap_before(heap, child, (child - 1) // 2):
            _heap_swap(heap, child, (child - 1) // 2)
            child = (child - 1) // 2
    while True:
        best = heap[0, 2]
        if state[best, _LINK] == best and state[best, _AREA] == heap[0, 0] and \
                state[best, _FIRST] == heap[0, 1]:
            break
        size -= 1
        _heap_swap(heap, 0, size)
        node = 0
        while True:
            top, left, right = node, 2 * node + 1, 2 * node + 2
            if left < size and _heap_before(heap, left, top):
                top = left
            if right < size and _heap_before(heap, right, top):
                top = right
            if top == node:
                break
            _heap_swap(heap, node, top)
            node = top
    inset_x, inset_y, grow_x, grow_y, width, height = frame
    largest[0] = state[best, _FX0] - inset_x
    largest[1] = state[best, _FY0] - inset_y
    largest[2] = min(state[best, _FX1] + grow_x, width - 1)
    largest[3] = min(state[best, _FY1] + grow_y, height - 1)
    return size


@numba.njit(cache=True, nogil=True)
def _foreground(level: np.ndarray, row: int, basin: np.ndarray, basin_starts: np.ndarray,
                nodes: np.ndarray, frame: tuple, counts: np.ndarray) -> tuple[int, np.ndarray]:
    """Nodes of the 8-connected components of ``q >= c`` and the largest-contour box of every
    cutoff ``c``, in one pass from the highest value down.

    Two union-finds share the pass: one over the pixels of ``q >= c``, and one over the filled
    map's ``m >= c`` whose elements are the components of the first and the ``basin`` pixels
    (``q < m``, sorted by ``m`` with starts ``basin_starts``), which enter it at their filled
    level ``m``, before they enter ``q >= c`` at ``q``. A filled component keeps its box, twice
    its polygon area (:data:`_WINDOW_GAIN` per entering pixel) and its first pixel; after each
    value the largest is the top of a max-heap of the filled components that changed. After
    value ``v`` there are ``counts[v]`` components of ``q >= v``.

    Returns:
        the number of ``nodes`` written, and the ``(257, 4)`` largest-contour boxes.
    """
    order, starts = _sort_nonzero(level)
    capacity = len(order) + len(basin)
    parent = np.full(level.size, -1, dtype=np.int32)
    state = np.empty((capacity, _COLUMNS), dtype=np.int32)
    heap = np.empty((capacity, 3), dtype=np.int32)
    touched = np.empty(capacity, dtype=np.int32)
    largest = np.zeros((NUM_CUTOFFS, 4), dtype=np.int32)
    steps = np.array([-row, -row + 1, 1, row + 1, row, row - 1, -1, -row - 1])
    heap_size = 0
    num_ids = 0
    alive = 0
    num_nodes = 0
    for value in range(NUM_CUTOFFS - 2, 0, -1):
        num_touched = 0
        for position in range(basin_starts[value], basin_starts[value + 1]):
            pixel = np.int64(basin[position])
            y = pixel // row
            x = pixel - y * row
            filled = 0
            for k in range(8):
                filled |= np.int64(parent[pixel + steps[k]] != -1) << k
            ident = num_ids
            num_ids += 1
            _filled_start(state, ident, pixel, x, y)
            state[ident, _OPENED] = -1
            state[ident, _AREA] = _WINDOW_GAIN[filled]
            parent[pixel] = _FILLED_ONLY - ident
            root = ident
            for arc in range(_ARCS_8[filled, 0]):
                neighbour = pixel + steps[_ARCS_8[filled, 1 + arc]]
                if parent[neighbour] > _FILLED_ONLY:
                    other = -2 - parent[_root(parent, neighbour)]
                else:
                    other = _FILLED_ONLY - parent[neighbour]
                root = _filled_union(state, root, _filled_root(state, other))
            num_touched = _touch(state, touched, num_touched, root, value)
        for position in range(starts[value], starts[value + 1]):
            pixel = np.int64(order[position])
            y = pixel // row
            x = pixel - y * row
            entered = 0
            filled = 0
            for k in range(8):
                link = parent[pixel + steps[k]]
                filled |= np.int64(link != -1) << k
                entered |= np.int64(link > _FILLED_ONLY and link != -1) << k
            basin_ident = _FILLED_ONLY - parent[pixel]
            root = -1
            for arc in range(_ARCS_8[entered, 0]):
                other = _root(parent, pixel + steps[_ARCS_8[entered, 1 + arc]])
                if root < 0:
                    root = other
                    ident = -2 - parent[root]
                    if _grows(state, ident, x, y, value):
                        num_nodes = _end_open_node(nodes, num_nodes, frame, state, ident, value,
                                                   True)
                    _join(parent, state, ident, root, pixel, x, y, value)
                elif other != root:
                    root, num_nodes = _merge(parent, state, root, other, value, True, nodes,
                                             num_nodes, frame)
                    alive -= 1
            if root < 0:
                ident = num_ids
                num_ids += 1
                _start(parent, state, ident, pixel, x, y, value)
                _filled_start(state, ident, pixel, x, y)
                alive += 1
            else:
                ident = -2 - parent[root]
                if state[ident, _OPENED] < 0:
                    state[ident, _OPENED] = value
            root = _filled_root(state, ident)
            if basin_ident >= 0:
                root = _filled_union(state, root, _filled_root(state, basin_ident))
            else:
                others = filled & ~entered
                while others:
                    k = _LOWEST_BIT[others]
                    others &= others - 1
                    other = _filled_root(state, _FILLED_ONLY - parent[pixel + steps[k]])
                    root = _filled_union(state, root, other)
                _filled_add(state, root, pixel, x, y, _WINDOW_GAIN[filled])
            num_touched = _touch(state, touched, num_touched, root, value)
        counts[value] = alive
        if num_touched:
            heap_size = _largest_box(state, touched, num_touched, heap, heap_size, frame,
                                     largest[value])
        else:
            largest[value] = largest[value + 1]
    for ident in range(num_ids):
        if state[ident, _OPENED] >= 0:
            num_nodes = _end_node(nodes, num_nodes, frame, state, ident, 1,
                                  state[ident, _OPENED])
    return num_nodes, largest


@numba.njit(cache=True, nogil=True)
def _holes(level: np.ndarray, basin: np.ndarray, basin_starts: np.ndarray, row: int,
           nodes: np.ndarray, num_nodes: int, frame: tuple, counts: np.ndarray) -> int:
    """Nodes of the holes (4-connected components of ``q < c`` off the border) per cutoff.

    A pixel is in a hole exactly for ``q < c <= m``, ``m`` its filled level, so only the
    ``basin`` pixels (``q < m``, sorted by ``m`` with starts ``basin_starts``) take part. They
    enter from value 0 up; all pixels of a hole share their filled level ``m`` and the hole
    opens onto the border, ending, once ``c`` exceeds ``m``. After value ``v`` the holes are
    those of cutoff ``v + 1`` (``counts[v + 1]`` of them). Returns the number of ``nodes``
    written so far (every hole ends, so no node stays open).

    The entering step mirrors the foreground sweep's: as a shared function the compiler does
    not inline it, and the call would count references of five arrays for every pixel.
    """
    if len(basin) == 0:
        return num_nodes
    order, starts = _sort_pixels(level, basin)
    parent = np.full(level.size, -1, dtype=np.int32)
    state = np.empty((len(basin), _COLUMNS), dtype=np.int32)
    steps = np.array([-row, 1, row, -1])
    num_ids = 0
    alive = 0
    for value in range(NUM_CUTOFFS - 1):
        for position in range(starts[value], starts[value + 1]):
            pixel = np.int64(order[position])
            y = pixel // row
            x = pixel - y * row
            entered = 0
            for k in range(4):
                entered |= np.int64(parent[pixel + steps[k]] != -1) << k
            root = -1
            for arc in range(_ARCS_4[entered, 0]):
                other = _root(parent, pixel + steps[_ARCS_4[entered, 1 + arc]])
                if root < 0:
                    root = other
                    ident = -2 - parent[root]
                    if _grows(state, ident, x, y, value + 1):
                        num_nodes = _end_open_node(nodes, num_nodes, frame, state, ident, value,
                                                   False)
                    _join(parent, state, ident, root, pixel, x, y, value + 1)
                elif other != root:
                    root, num_nodes = _merge(parent, state, root, other, value, False, nodes,
                                             num_nodes, frame)
                    alive -= 1
            if root < 0:
                _start(parent, state, num_ids, pixel, x, y, value + 1)
                num_ids += 1
                alive += 1
            else:
                ident = -2 - parent[root]
                if state[ident, _OPENED] < 0:
                    state[ident, _OPENED] = value + 1
        for position in range(basin_starts[value], basin_starts[value + 1]):
            ident = -2 - parent[_root(parent, np.int64(basin[position]))]
            if state[ident, _SIZE] > 0:
                state[ident, _SIZE] = 0
                alive -= 1
                if state[ident, _OPENED] >= 0:
                    num_nodes = _end_open_node(nodes, num_nodes, frame, state, ident, value,
                                               False)
        counts[value + 1] = alive
    return num_nodes


@numba.njit(cache=True, nogil=True)
def _all_levels(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pass over one map.

    Returns:
        the nodes (``(x0, y0, x1, y1, first, last)`` rows), the number of contours of every
        cutoff ``(257,)`` and the largest-contour box of every cutoff ``(257, 4)``.
    """
    height, width = q.shape
    level, row, top, left, peak = _crop(q)
    basin, basin_starts = _basins(level, row)
    # A node ends when a pixel grows its box, when its component merges (two per merge, at
    # most one merge per component made) or at the end: at most three per pixel of a sweep.
    nodes = np.empty((3 * (level.size + len(basin)) + 1, 6), dtype=np.int32)
    outer_counts = np.zeros(NUM_CUTOFFS, dtype=np.int32)
    hole_counts = np.zeros(NUM_CUTOFFS, dtype=np.int32)
    num_nodes, largest = _foreground(level, row, basin, basin_starts, nodes,
                                     (1 - left, 1 - top, left, top, width, height),
                                     outer_counts)
    num_nodes = _holes(level, basin, basin_starts, row, nodes, num_nodes,
                       (2 - left, 2 - top, 1 + left, 1 + top, width, height), hole_counts)
    nodes[num_nodes] = (0, 0, 0, 0, peak + 1, NUM_CUTOFFS - 1)
    return nodes[:num_nodes + 1], np.maximum(outer_counts + hole_counts, 1), largest


@numba.njit(cache=True, nogil=True)
def _cutoff_ious(q: np.ndarray, gt: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nodes, counts, largest = _all_levels(q)
    ious = np.empty(len(nodes))
    for node in range(len(nodes)):
        ious[node] = _best_iou(nodes[node, 0], nodes[node, 1], nodes[node, 2], nodes[node, 3],
                               gt)[0]
    best = _interval_max(ious, nodes[:, 4], nodes[:, 5])
    single_any = np.empty(NUM_CUTOFFS)
    single_first = np.empty(NUM_CUTOFFS)
    for cutoff in range(NUM_CUTOFFS):
        single_any[cutoff], single_first[cutoff] = _best_iou(
            largest[cutoff, 0], largest[cutoff, 1], largest[cutoff, 2], largest[cutoff, 3], gt)
    return best, single_any, single_first, counts


@dataclass
class CutoffIous:
    """Per cutoff ``c`` (index ``0 … 256``; meaningful from 1) of one map against its GT boxes.

    ``multi``: best IoU of any contour box of ``q >= c`` with any GT box; ``single_any`` and
    ``single_first``: IoU of the largest-contour box with any GT box and with the first one;
    ``num_boxes``: number of contour boxes (1 for an empty image, its box ``(0, 0, 0, 0)``).
    """

    multi: np.ndarray
    single_any: np.ndarray
    single_first: np.ndarray
    num_boxes: np.ndarray


def cutoff_ious(q: np.ndarray, gt_boxes: np.ndarray) -> CutoffIous:
    """IoUs of the contour boxes of every cutoff of ``q`` (see :class:`CutoffIous`).

    Args:
        q: ``(H, W)`` uint8 map (see :func:`wsol.metrics.boxes.quantize`).
        gt_boxes: ``(G, 4)`` valid integer boxes, ``G >= 1`` (see
            :func:`wsol.metrics.boxes.check_boxes`).
    """
    if len(gt_boxes) == 0:
        raise ValueError("cutoff_ious needs at least one ground-truth box")
    return CutoffIous(*_cutoff_ious(np.ascontiguousarray(q, dtype=np.uint8),
                                    np.ascontiguousarray(gt_boxes, dtype=np.int64)))


def level_boxes(q: np.ndarray) -> LevelBoxes:
    """Contour boxes of ``q >= c`` for every cutoff ``c`` (see :class:`LevelBoxes`).

    Args:
        q: ``(H, W)`` uint8 map (see :func:`wsol.metrics.boxes.quantize`).
    """
    nodes, counts, largest = _all_levels(np.ascontiguousarray(q, dtype=np.uint8))
    nodes = nodes.astype(np.int64)
    return LevelBoxes(nodes[:, :4], nodes[:, 4], nodes[:, 5], counts.astype(np.int64),
                      largest.astype(np.int64))


def warm_up() -> None:
    """Load (or compile, on first use) the compiled passes, so that worker processes forked
    afterwards start with them ready."""
    level_boxes(np.zeros((3, 3), dtype=np.uint8))
    cutoff_ious(np.zeros((3, 3), dtype=np.uint8), np.zeros((1, 4), dtype=np.int64))
