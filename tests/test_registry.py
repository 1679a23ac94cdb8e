"""Registries: a name registers once; an unknown name lists the known ones and the closest."""

from __future__ import annotations

import pytest

from jdspec.compress import COMPRESSORS
from jdspec.errors import SpecError
from jdspec.registry import Registry


def test_a_name_registered_twice_raises_naming_it() -> None:
    registry: Registry[int] = Registry("test entry")
    registry.register("one")(1)
    with pytest.raises(ValueError, match="test entry 'one' is registered twice"):
        registry.register("one")(2)
    assert registry.get("one") == 1  # the first stays


def test_a_shipped_method_cannot_be_registered_again() -> None:
    with pytest.raises(ValueError, match="compression method 'magnitude' is registered twice"):
        COMPRESSORS.register("magnitude")(COMPRESSORS.get("magnitude"))


def test_an_unknown_name_lists_the_known_and_the_closest() -> None:
    registry: Registry[int] = Registry("method")
    for name in ("magnitude", "wanda", "none"):
        registry.register(name)(0)
    with pytest.raises(SpecError) as raised:
        registry.get("wand")
    assert str(raised.value) == (
        "unknown method 'wand'; known: magnitude, none, wanda (did you mean 'wanda'?)"
    )
    assert registry.names() == ["magnitude", "none", "wanda"]
