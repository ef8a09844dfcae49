"""KeptByIdentity: values found again by the identity of the objects they were made of."""

from __future__ import annotations

import gc

from service.domain.kept import KeptByIdentity


def test_a_value_is_found_by_the_same_objects_and_an_equal_also_only():
    kept: KeptByIdentity[str] = KeptByIdentity()
    days, points = (1, 2), (3,)
    kept.keep((days, points), "made", also="2024-03-10")
    assert kept.get((days, points), "2024-03-10") == "made"
    assert kept.get((days, points), "2024-03-11") is None, "another also"
    assert kept.get((tuple([1, 2]), points), "2024-03-10") is None, "equal, not the same"
    assert kept.get((points, days), "2024-03-10") is None


def test_an_entry_holds_its_objects_so_that_no_other_object_takes_their_id():
    kept: KeptByIdentity[str] = KeptByIdentity()
    made = [object()]
    kept.keep((made[0],), "of the first")
    first_id = id(made[0])
    made.clear()
    gc.collect()
    others = [object() for _ in range(1000)]
    assert all(id(other) != first_id for other in others)


def test_when_full_everything_is_forgotten():
    kept: KeptByIdentity[int] = KeptByIdentity(size=2)
    objects = [object() for _ in range(3)]
    kept.keep((objects[0],), 0)
    kept.keep((objects[1],), 1)
    assert kept.get((objects[0],)) == 0
    kept.keep((objects[2],), 2)
    assert kept.get((objects[0],)) is None and kept.get((objects[1],)) is None
    assert kept.get((objects[2],)) == 2


def test_get_or_make_makes_once_for_the_same_objects():
    kept: KeptByIdentity[list] = KeptByIdentity()
    plan = tuple([1, 2])
    made = []

    def make():
        made.append(1)
        return ["value"]

    first = kept.get_or_make((plan,), make, "day")
    assert kept.get_or_make((plan,), make, "day") is first
    assert kept.get_or_make((tuple([1, 2]),), make, "day") is not first  # equal, not the same
    assert kept.get_or_make((plan,), make, "another day") is not first
    assert len(made) == 3
