"""Contour boxes of every threshold of a uint8 map from one pass over its pixels per tree.

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

:func:`cutoff_ious` runs every pass and the IoUs against the ground-truth boxes in one compiled
call (numba, cached on disk; see :func:`warm_up`); :func:`level_boxes` lists the nodes.
Pixels are addressed in the map padded with a one-pixel frame of zeros, so that no neighbour
lookup needs a bounds check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["CutoffIous", "LevelBoxes", "cutoff_ious", "interval_max", "level_boxes", "warm_up"]

NUM_CUTOFFS = 257
"""Cutoffs ``c`` index arrays ``0 … 256``: the binary image is ``q >= c`` (``c = 256`` is empty)."""

_NO_GT = np.zeros((0, 4), dtype=np.int64)


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


@numba.njit(cache=True, nogil=True)
def _find(parent: np.ndarray, pixel: int) -> int:
    """Root of ``pixel`` (path halving)."""
    while parent[pixel] != pixel:
        grandparent = parent[parent[pixel]]
        parent[pixel] = grandparent
        pixel = grandparent
    return pixel


@numba.njit(cache=True, nogil=True)
def _padded(q: np.ndarray) -> np.ndarray:
    """``q`` with a one-pixel frame of zeros, flattened."""
    height, width = q.shape
    row = width + 2
    level = np.zeros((height + 2) * row, dtype=np.uint8)
    for y in range(height):
        start = (y + 1) * row + 1
        for x in range(width):
            level[start + x] = q[y, x]
    return level


@numba.njit(cache=True, nogil=True)
def _sort_nonzero(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of value ``v >= 1`` sorted by value (raster order within a value) and the
    start ``starts[v]`` of each value in that order (``starts[v + 1]`` its end)."""
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
def _sort_pixels(key: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pixels`` sorted by ``key`` (stable) and the start of each key value in that order."""
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
def _spread_max(result: np.ndarray, value: float, first: int, last: int) -> None:
    for cutoff in range(first, last + 1):
        if value > result[cutoff]:
            result[cutoff] = value


@numba.njit(cache=True, nogil=True)
def _interval_max(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    result = np.full(NUM_CUTOFFS, -np.inf)
    for k in range(len(values)):
        _spread_max(result, values[k], first[k], last[k])
    return result


def interval_max(values: np.ndarray, first_cutoff: np.ndarray, last_cutoff: np.ndarray
                 ) -> np.ndarray:
    """``(257,)`` maximum of ``values[k]`` over the ``k`` whose cutoff range holds each cutoff.

    Cutoffs that no range holds get ``-inf``.
    """
    return _interval_max(np.ascontiguousarray(values, dtype=np.float64),
                         np.asarray(first_cutoff, dtype=np.int64),
                         np.asarray(last_cutoff, dtype=np.int64))


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
def _record_node(sink: tuple, x0: int, y0: int, x1: int, y1: int, first: int, last: int,
                 num_recorded: int) -> int:
    """Take in one node: its box and its cutoffs ``first … last``.

    ``sink`` is ``(gt, best, record)``: the node's best IoU with the ``gt`` boxes (if any) is
    spread over ``best[first:last + 1]``, and the node becomes row ``num_recorded`` of
    ``record`` while it has room. Returns the number of nodes recorded.
    """
    gt, best, record = sink
    if first > last:
        return num_recorded
    if gt.shape[0]:
        _spread_max(best, _best_iou(x0, y0, x1, y1, gt)[0], first, last)
    if num_recorded < record.shape[0]:
        record[num_recorded, 0] = x0
        record[num_recorded, 1] = y0
        record[num_recorded, 2] = x1
        record[num_recorded, 3] = y1
        record[num_recorded, 4] = first
        record[num_recorded, 5] = last
        num_recorded += 1
    return num_recorded


@numba.njit(cache=True, nogil=True)
def _end_node(sink: tuple, frame: tuple, extent: np.ndarray, root: int, first: int, last: int,
              num_recorded: int) -> int:
    """End the node of ``root`` (cutoffs ``first … last``, box from the root's padded extent).

    ``frame`` is ``(inset, grow, width, height)``: the node's ``cv2.boundingRect`` box is the
    padded extent moved by ``-inset`` at the top left and ``grow`` at the bottom right, clipped.
    """
    inset, grow, width, height = frame
    return _record_node(sink, extent[root, 0] - inset, extent[root, 1] - inset,
                        min(extent[root, 2] + grow, width - 1),
                        min(extent[root, 3] + grow, height - 1), first, last, num_recorded)


@numba.njit(cache=True, nogil=True)
def _end_open_node(sink: tuple, frame: tuple, extent: np.ndarray, root: int, began: int,
                   value: int, falling: bool, num_recorded: int) -> int:
    """End the open node of ``root`` (begun at cutoff ``began``) while ``value`` enters."""
    if falling:
        return _end_node(sink, frame, extent, root, value + 1, began, num_recorded)
    return _end_node(sink, frame, extent, root, began, value, num_recorded)


@numba.njit(cache=True, nogil=True)
def _end_nodes(sink: tuple, frame: tuple, extent: np.ndarray, a: int, began_a: int, b: int,
               began_b: int, value: int, falling: bool, num_recorded: int) -> int:
    """End the open nodes (``began >= 0``) of roots ``a`` and ``b`` while ``value`` enters."""
    if began_a >= 0:
        num_recorded = _end_open_node(sink, frame, extent, a, began_a, value, falling,
                                      num_recorded)
    if began_b >= 0:
        num_recorded = _end_open_node(sink, frame, extent, b, began_b, value, falling,
                                      num_recorded)
    return num_recorded


@numba.njit(cache=True, nogil=True)
def _start(parent: np.ndarray, sizes: np.ndarray, extent: np.ndarray, pixel: int, row: int
           ) -> None:
    """Make ``pixel`` a component of its own."""
    parent[pixel] = pixel
    sizes[pixel] = 1
    x, y = pixel % row, pixel // row
    extent[pixel, 0] = x
    extent[pixel, 1] = y
    extent[pixel, 2] = x
    extent[pixel, 3] = y


@numba.njit(cache=True, nogil=True)
def _outside_box(extent: np.ndarray, root: int, pixel: int, row: int) -> bool:
    """Whether ``pixel`` lies outside the box of the component of ``root``."""
    x, y = pixel % row, pixel // row
    return x < extent[root, 0] or y < extent[root, 1] or x > extent[root, 2] or \
        y > extent[root, 3]


@numba.njit(cache=True, nogil=True)
def _join(parent: np.ndarray, sizes: np.ndarray, extent: np.ndarray, pixel: int, root: int,
          row: int) -> None:
    """Add the entering ``pixel`` to the component of ``root`` (no record of its own: an
    entering pixel next to a component joins it directly) and grow the box to hold it."""
    parent[pixel] = root
    sizes[root] += 1
    x, y = pixel % row, pixel // row
    extent[root, 0] = min(extent[root, 0], x)
    extent[root, 1] = min(extent[root, 1], y)
    extent[root, 2] = max(extent[root, 2], x)
    extent[root, 3] = max(extent[root, 3], y)


@numba.njit(cache=True, nogil=True)
def _component_nodes(order: np.ndarray, starts: np.ndarray, ending: np.ndarray,
                     ending_starts: np.ndarray, size: int, row: int, steps: np.ndarray,
                     falling: bool, sink: tuple, frame: tuple, counts: np.ndarray,
                     num_recorded: int) -> int:
    """Nodes of the components of the pixels ``order`` (grouped by value by ``starts``) as
    they enter, from the highest value down when ``falling``, else from 0 up.

    ``steps`` are the neighbour offsets; ``ending[ending_starts[v]:ending_starts[v + 1]]`` are
    pixels whose components end (leave) once value ``v`` has entered. ``opened[r]`` is the
    cutoff at which the open node of root ``r`` began (its last cutoff when ``falling``, its
    first otherwise; ``-1``: none); when two components join, a node whose box is the joined
    box carries on (one at most) and the others end; falling, the nodes still open at the end
    last down to cutoff 1. After value ``v``, ``counts[v]`` (``falling``) or ``counts[v + 1]``
    holds the number of components. Returns the number of nodes recorded.
    """
    parent = np.full(size, -1, dtype=np.int32)
    sizes = np.empty(size, dtype=np.int32)
    extent = np.empty((size, 4), dtype=np.int32)
    opened = np.empty(size, dtype=np.int32)
    alive = 0
    for index in range(NUM_CUTOFFS - 2 if falling else NUM_CUTOFFS - 1):
        value = NUM_CUTOFFS - 2 - index if falling else index
        bound = value if falling else value + 1
        for position in range(starts[value], starts[value + 1]):
            pixel = np.int64(order[position])
            root = -1
            for step in steps:
                other = np.int64(parent[pixel + step])
                if other < 0 or other == root:
                    continue
                other = _find(parent, other)
                if other == root:
                    continue
                if root < 0:
                    root = other
                    if opened[root] >= 0 and _outside_box(extent, root, pixel, row):
                        num_recorded = _end_open_node(sink, frame, extent, root,
                                                      opened[root], value, falling,
                                                      num_recorded)
                        opened[root] = -1
                    _join(parent, sizes, extent, pixel, root, row)
                    continue
                x0 = min(extent[root, 0], extent[other, 0])
                y0 = min(extent[root, 1], extent[other, 1])
                x1 = max(extent[root, 2], extent[other, 2])
                y1 = max(extent[root, 3], extent[other, 3])
                began_root = opened[root]
                began_other = opened[other]
                carried = -1
                if began_root >= 0 and extent[root, 0] == x0 and extent[root, 1] == y0 and \
                        extent[root, 2] == x1 and extent[root, 3] == y1:
                    carried, began_root = began_root, -1
                elif began_other >= 0 and extent[other, 0] == x0 and \
                        extent[other, 1] == y0 and extent[other, 2] == x1 and \
                        extent[other, 3] == y1:
                    carried, began_other = began_other, -1
                if began_root >= 0 or began_other >= 0:
                    num_recorded = _end_nodes(sink, frame, extent, root, began_root, other,
                                              began_other, value, falling, num_recorded)
                if sizes[root] < sizes[other]:
                    root, other = other, root
                parent[other] = root
                sizes[root] += sizes[other]
                extent[root, 0] = x0
                extent[root, 1] = y0
                extent[root, 2] = x1
                extent[root, 3] = y1
                opened[root] = carried
                alive -= 1
            if root < 0:
                _start(parent, sizes, extent, pixel, row)
                opened[pixel] = -1
                alive += 1
                root = pixel
            if opened[root] < 0:
                opened[root] = bound
        for position in range(ending_starts[value], ending_starts[value + 1]):
            root = _find(parent, np.int64(ending[position]))
            if sizes[root] > 0:
                sizes[root] = 0
                alive -= 1
                if opened[root] >= 0:
                    num_recorded = _end_node(sink, frame, extent, root, opened[root], value,
                                             num_recorded)
                    opened[root] = -1
        counts[bound] = alive
    for pixel in order:
        if falling and parent[pixel] == pixel and opened[pixel] >= 0:
            num_recorded = _end_node(sink, frame, extent, pixel, 1, opened[pixel],
                                     num_recorded)
    return num_recorded


@numba.njit(cache=True, nogil=True)
def _foreground(level: np.ndarray, row: int, sink: tuple, frame: tuple, counts: np.ndarray,
                num_recorded: int) -> int:
    """Nodes of the 8-connected components of ``q >= c`` for every cutoff ``c``.

    Pixels enter from the highest value down; after value ``v`` the components are those of
    ``q >= v`` (``counts[v]`` of them). Returns the number of nodes recorded.
    """
    order, starts = _sort_nonzero(level)
    no_ending = np.zeros(NUM_CUTOFFS + 1, dtype=np.int32)
    steps = np.array([-row - 1, -row, -row + 1, -1, 1, row - 1, row, row + 1])
    return _component_nodes(order, starts, order[:0], no_ending, level.size, row, steps,
                            True, sink, frame, counts, num_recorded)


@numba.njit(cache=True, nogil=True)
def _holes(level: np.ndarray, filled: np.ndarray, row: int, sink: tuple, frame: tuple,
           counts: np.ndarray, num_recorded: int) -> int:
    """Nodes of the holes (4-connected components of ``q < c`` off the border) per cutoff.

    A pixel is in a hole exactly for ``q < c <= filled``, so only basin pixels
    (``q < filled``) take part. They enter from value 0 up; all pixels of a hole share their
    filled level ``m`` and the hole opens onto the border, ending, once ``c`` exceeds ``m``.
    After value ``v`` the holes are those of cutoff ``v + 1`` (``counts[v + 1]`` of them).
    Returns the number of nodes recorded (every hole ends, so no node stays open).
    """
    num_basin = 0
    for pixel in range(level.size):
        num_basin += filled[pixel] != level[pixel]
    basin = np.empty(num_basin, dtype=np.int32)
    num_basin = 0
    for pixel in range(level.size):
        if filled[pixel] != level[pixel]:
            basin[num_basin] = pixel
            num_basin += 1
    order, starts = _sort_pixels(level, basin)
    ending, ending_starts = _sort_pixels(filled, basin)
    steps = np.array([-row, -1, 1, row])
    return _component_nodes(order, starts, ending, ending_starts, level.size, row, steps,
                            False, sink, frame, counts, num_recorded)


@numba.njit(cache=True, nogil=True)
def _filled(level: np.ndarray, row: int) -> np.ndarray:
    """The padded map with every basin filled: each interior pixel raised to the lowest level
    at which a 4-path from it reaches the frame (a priority flood from the border)."""
    height = level.size // row - 2
    width = row - 2
    filled = level.copy()
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
    for value in range(NUM_CUTOFFS - 1):
        while head[value] >= 0:
            pixel = np.int64(head[value])
            head[value] = following[pixel]
            for neighbour in (pixel - row, pixel - 1, pixel + 1, pixel + row):
                if seen[neighbour]:
                    continue
                seen[neighbour] = True
                raised = max(level[neighbour], value)
                filled[neighbour] = raised
                following[neighbour] = head[raised]
                head[raised] = neighbour
    return filled


@numba.njit(cache=True, nogil=True)
def _heap_before(area: np.ndarray, first: np.ndarray, i: int, j: int) -> bool:
    """Whether heap entry ``i`` ranks above entry ``j``: larger area, then later first pixel."""
    return area[i] > area[j] or (area[i] == area[j] and first[i] > first[j])


@numba.njit(cache=True, nogil=True)
def _heap_swap(area: np.ndarray, first: np.ndarray, root: np.ndarray, i: int, j: int) -> None:
    area[i], area[j] = area[j], area[i]
    first[i], first[j] = first[j], first[i]
    root[i], root[j] = root[j], root[i]


@numba.njit(cache=True, nogil=True)
def _heap_push(area: np.ndarray, first: np.ndarray, root: np.ndarray, size: int,
               new_area: int, new_first: int, new_root: int) -> int:
    """Add an entry to the max-heap held in the three arrays; return the new size."""
    area[size], first[size], root[size] = new_area, new_first, new_root
    child = size
    while child > 0:
        parent = (child - 1) // 2
        if not _heap_before(area, first, child, parent):
            break
        _heap_swap(area, first, root, child, parent)
        child = parent
    return size + 1


@numba.njit(cache=True, nogil=True)
def _heap_pop(area: np.ndarray, first: np.ndarray, root: np.ndarray, size: int) -> int:
    """Remove the top entry of the max-heap; return the new size."""
    size -= 1
    _heap_swap(area, first, root, 0, size)
    node = 0
    while True:
        top, left, right = node, 2 * node + 1, 2 * node + 2
        if left < size and _heap_before(area, first, left, top):
            top = left
        if right < size and _heap_before(area, first, right, top):
            top = right
        if top == node:
            return size
        _heap_swap(area, first, root, node, top)
        node = top


@numba.njit(cache=True, nogil=True)
def _largest(filled: np.ndarray, row: int, frame: tuple) -> np.ndarray:
    """``(257, 4)`` largest-contour box of ``q >= c`` for every cutoff ``c`` (``(0, 0, 0, 0)``
    where the binary image is empty), from :func:`_filled` of the padded ``q``."""
    inset, grow, width, height = frame
    order, starts = _sort_nonzero(filled)
    parent = np.full(filled.size, -1, dtype=np.int32)
    sizes = np.empty(filled.size, dtype=np.int32)
    extent = np.empty((filled.size, 4), dtype=np.int32)
    twice_area = np.empty(filled.size, dtype=np.int32)
    first_pixel = np.empty(filled.size, dtype=np.int32)
    touched_at = np.full(filled.size, -1, dtype=np.int32)
    touched = np.empty(len(order), dtype=np.int32)
    window = np.zeros(filled.size, dtype=np.int8)
    heap_area = np.empty(len(order), dtype=np.int32)
    heap_first = np.empty(len(order), dtype=np.int32)
    heap_root = np.empty(len(order), dtype=np.int32)
    heap_size = 0
    largest = np.zeros((NUM_CUTOFFS, 4), dtype=np.int32)
    for value in range(NUM_CUTOFFS - 2, 0, -1):
        if starts[value] == starts[value + 1]:
            largest[value] = largest[value + 1]
            continue
        num_touched = 0
        for position in range(starts[value], starts[value + 1]):
            pixel = np.int64(order[position])
            gained = 0
            for corner in (pixel - row - 1, pixel - row, pixel - 1, pixel):
                count = window[corner]
                gained += count >= 2
                window[corner] = count + 1
            root = -1
            for neighbour in (pixel - row - 1, pixel - row, pixel - row + 1, pixel - 1,
                              pixel + 1, pixel + row - 1, pixel + row, pixel + row + 1):
                other = np.int64(parent[neighbour])
                if other < 0 or other == root:
                    continue
                other = _find(parent, other)
                if other == root:
                    continue
                if root < 0:
                    root = other
                    _join(parent, sizes, extent, pixel, root, row)
                    twice_area[root] += gained
                    first_pixel[root] = min(first_pixel[root], pixel)
                    continue
                if sizes[root] < sizes[other]:
                    root, other = other, root
                parent[other] = root
                sizes[root] += sizes[other]
                extent[root, 0] = min(extent[root, 0], extent[other, 0])
                extent[root, 1] = min(extent[root, 1], extent[other, 1])
                extent[root, 2] = max(extent[root, 2], extent[other, 2])
                extent[root, 3] = max(extent[root, 3], extent[other, 3])
                twice_area[root] += twice_area[other]
                first_pixel[root] = min(first_pixel[root], first_pixel[other])
            if root < 0:
                _start(parent, sizes, extent, pixel, row)
                twice_area[pixel] = gained
                first_pixel[pixel] = pixel
                root = pixel
            if touched_at[root] != value:
                touched_at[root] = value
                touched[num_touched] = root
                num_touched += 1
        for index in range(num_touched):
            root = touched[index]
            if parent[root] == root:
                heap_size = _heap_push(heap_area, heap_first, heap_root, heap_size,
                                       twice_area[root], first_pixel[root], root)
        while True:
            best = heap_root[0]
            if parent[best] == best and twice_area[best] == heap_area[0] and \
                    first_pixel[best] == heap_first[0]:
                break
            heap_size = _heap_pop(heap_area, heap_first, heap_root, heap_size)
        largest[value, 0] = extent[best, 0] - inset
        largest[value, 1] = extent[best, 1] - inset
        largest[value, 2] = min(extent[best, 2] + grow, width - 1)
        largest[value, 3] = min(extent[best, 3] + grow, height - 1)
    return largest


@numba.njit(cache=True, nogil=True)
def _all_levels(q: np.ndarray, gt: np.ndarray, record: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Every pass over one map: per cutoff, the best IoU of any contour box with any ``gt`` box
    (``-inf`` without ``gt``), the number of contours and the largest-contour box; the nodes
    are recorded into ``record`` (``(x0, y0, x1, y1, first, last)`` rows) while it has room.

    Returns:
        best IoUs ``(257,)``, contours ``(257,)``, largest boxes ``(257, 4)``, nodes recorded.
    """
    height, width = q.shape
    row = width + 2
    level = _padded(q)
    best = np.full(NUM_CUTOFFS, -np.inf)
    sink = (gt, best, record)
    outer_counts = np.zeros(NUM_CUTOFFS, dtype=np.int32)
    hole_counts = np.zeros(NUM_CUTOFFS, dtype=np.int32)
    num_recorded = _foreground(level, row, sink, (1, 0, width, height), outer_counts, 0)
    filled = _filled(level, row)
    num_recorded = _holes(level, filled, row, sink, (2, 1, width, height), hole_counts,
                          num_recorded)
    first_empty = 1
    for pixel in range(level.size):
        first_empty = max(first_empty, level[pixel] + 1)
    num_recorded = _record_node(sink, 0, 0, 0, 0, first_empty, NUM_CUTOFFS - 1, num_recorded)
    counts = np.maximum(outer_counts + hole_counts, 1)
    return best, counts, _largest(filled, row, (1, 0, width, height)), num_recorded


@numba.njit(cache=True, nogil=True)
def _cutoff_ious(q: np.ndarray, gt: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    best, counts, largest, _ = _all_levels(q, gt, np.zeros((0, 6), dtype=np.int32))
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
    q = np.ascontiguousarray(q, dtype=np.uint8)
    record = np.empty((2 * q.size + 1, 6), dtype=np.int32)
    _, counts, largest, num_recorded = _all_levels(q, _NO_GT, record)
    nodes = record[:num_recorded].astype(np.int64)
    return LevelBoxes(nodes[:, :4], nodes[:, 4], nodes[:, 5], counts.astype(np.int64),
                      largest.astype(np.int64))


def warm_up() -> None:
    """Load (or compile, on first use) the compiled passes, so that worker processes forked
    afterwards start with them ready."""
    interval_max(np.zeros(1), np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64))
    level_boxes(np.zeros((3, 3), dtype=np.uint8))
    cutoff_ious(np.zeros((3, 3), dtype=np.uint8), np.zeros((1, 4), dtype=np.int64))
