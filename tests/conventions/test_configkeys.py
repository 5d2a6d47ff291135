from dataclasses import dataclass

import pytest

from conventions.configkeys import field_names, refuse_unknown_keys


@dataclass
class _Example:
    rate_hz: float = 1.0
    seed: int = 0


def test_known_keys_pass_and_unknown_ones_are_named():
    refuse_unknown_keys({"rate_hz": 2.0}, field_names(_Example), "example")
    with pytest.raises(KeyError, match=r"unknown key\(s\) \['rate', 'speed'\] in example; known keys: "
                                       r"\['rate_hz', 'seed'\]"):
        refuse_unknown_keys({"rate": 2.0, "speed": 1, "seed": 3}, field_names(_Example), "example", KeyError)
