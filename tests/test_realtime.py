"""The live data path's garbage-collector setting: set-up objects frozen, new cycles still collected."""
from __future__ import annotations

import gc

from pipeline.runners.realtime import freeze_setup_objects


def test_setup_objects_are_frozen_and_new_cycles_are_still_collected():
    try:
        frozen = freeze_setup_objects()
        assert frozen > 1000  # pytest, numpy and friends: everything alive now is frozen
        assert gc.isenabled()

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle made after set-up
        del a, b
        assert gc.collect() >= 2  # still found and freed
    finally:
        gc.unfreeze()
