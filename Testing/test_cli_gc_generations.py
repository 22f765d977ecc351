"""When the command line turns cyclic garbage collection back on after a command, the objects
made during the pause are in the oldest generation, not the youngest (whose first collection
would otherwise walk every object the command's imports made), nothing stays frozen, and
objects a caller froze itself stay frozen."""

from __future__ import annotations

import gc

from RefractureRiskLib import cli


class _Node:
    """A container object gc tracks (and can find in a generation)."""

    def __init__(self) -> None:
        self.me = self


def _generation_of(obj: object) -> int | None:
    for generation in range(3):
        if any(o is obj for o in gc.get_objects(generation=generation)):
            return generation
    return None


def test_objects_of_the_pause_land_in_the_oldest_generation() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with cli.collection_paused():
        made = _Node()
        assert _generation_of(made) == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert _generation_of(made) == 2
    del made.me  # no cycle left behind
    gc.collect()  # a full collection still reaches them
    assert gc.isenabled()


def test_objects_the_caller_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with cli.collection_paused():
            made = _Node()
        assert gc.isenabled() and gc.get_freeze_count() == frozen
        assert _generation_of(made) == 0  # enabled as it was: nothing moved
        del made.me
    finally:
        gc.unfreeze()
