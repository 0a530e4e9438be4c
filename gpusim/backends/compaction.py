"""Deterministic agent-table compaction for any array module (``xp`` = numpy or cupy).

The CAR-T table is padded per replicate: arrays (R, C), live cells in slots ``< t_count[r]``.  After
deaths and divisions the new table holds, per replicate, the survivors in slot order followed by
the daughters in their parents' slot order (the order of ``gpusim.model.car_t._fate``/``scatter``);
entrants from vessels are appended after the live cells in voxel order
(``gpusim.model.systemic._append``).  Destinations are integer prefix sums (``xp.cumsum`` along the
slot axis), exact and therefore identical on every backend and for any thread order; no agent is
dropped: a replicate that would need more than C slots is reported (``overflow``) before anything
is written, and the caller raises :class:`~gpusim.errors.CapacityError`.
"""

from __future__ import annotations


def compaction_slots(xp, keep, born):
    """Destination slots of survivors and daughters.

    Args:
        keep: bool (R, C): the entry survives (False for padding).
        born: bool (R, C): the entry's cell has a daughter (placed after every survivor).

    Returns:
        ``(dst_keep, dst_born, count)``: int64 (R, C) destination slots (meaningful where the flag
        is set) and int64 (R,) the new number of live cells.
    """
    keep = keep.astype(xp.int64)
    born = born.astype(xp.int64)
    n_keep = keep.sum(axis=1)
    dst_keep = xp.cumsum(keep, axis=1) - keep
    dst_born = n_keep[:, None] + xp.cumsum(born, axis=1) - born
    return dst_keep, dst_born, n_keep + born.sum(axis=1)


def compact(xp, table: dict, keep, born, daughters: dict, fill: dict):
    """The new padded table (a dict of (R, C) arrays) or ``(None, overflow)``.

    ``daughters`` maps a field to the (R, C) values a daughter takes (at its parent's entry);
    fields not in it are copied from the parent.  ``fill`` gives the padding value of a field
    (default 0).  Returns ``(new_table, count)``; when a replicate would need more than C slots
    returns ``(None, overflow_mask)`` and writes nothing.  The capacity is the table's C.
    """
    dst_keep, dst_born, count = compaction_slots(xp, keep, born)
    overflow = count > keep.shape[1]
    if bool(overflow.any()):
        return None, overflow
    R, C = keep.shape
    rows = xp.broadcast_to(xp.arange(R)[:, None], (R, C))
    kr, kc = rows[keep], dst_keep[keep]
    br, bc = rows[born], dst_born[born]
    out = {}
    for f, arr in table.items():
        new = xp.full_like(arr, fill.get(f, 0))
        new[kr, kc] = arr[keep]
        new[br, bc] = daughters.get(f, arr)[born]
        out[f] = new
    return out, count


def append_slots(xp, t_count, enter):
    """Slots of entrants appended after the live cells, in voxel order: enter bool (R, V) ->
    (int64 (R, V) slots, int64 (R,) new counts)."""
    e = enter.astype(xp.int64)
    return t_count.astype(xp.int64)[:, None] + xp.cumsum(e, axis=1) - e, t_count + e.sum(axis=1)
