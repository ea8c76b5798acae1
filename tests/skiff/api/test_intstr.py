import pytest

from skiff.api import intstr


@pytest.mark.parametrize("value, total, up, expected", [
    ("3", 10, True, 3), ("3", 10, False, 3), ("25%", 10, True, 3), ("25%", 10, False, 2),
    ("10%", 30, False, 3), ("0%", 7, True, 0), ("100%", 7, False, 7), ("1%", 1, True, 1),
])
def test_scaled(value, total, up, expected):
    assert intstr.scaled(value, total, round_up=up) == expected


@pytest.mark.parametrize("value", ["", "abc", "1.5", "25 %", "%", "-1", "-5%", "101%"])
def test_check_refuses(value):
    assert intstr.check(value)


@pytest.mark.parametrize("value", ["0", "1", "25%", "100%"])
def test_check_accepts(value):
    assert intstr.check(value) is None


def test_scaled_refuses_garbage():
    with pytest.raises(intstr.IntOrStringError):
        intstr.scaled("lots", 3, round_up=True)
