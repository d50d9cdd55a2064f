"""The quantity parser reads Kubernetes quantities exactly and rejects everything else."""

from __future__ import annotations

from fractions import Fraction

import pytest

from raftkube.objects.quantity import QuantityError, is_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Fraction(0)),
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("2.5", Fraction(5, 2)),
        ("100n", Fraction(1, 10**7)),
        ("3u", Fraction(3, 10**6)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("1T", Fraction(10**12)),
        ("1P", Fraction(10**15)),
        ("1E", Fraction(10**18)),
        ("1Ki", Fraction(1024)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("1Ti", Fraction(2**40)),
        ("1Pi", Fraction(2**50)),
        ("1Ei", Fraction(2**60)),
        ("2e3", Fraction(2000)),
        ("2E3", Fraction(2000)),
        ("1e-3", Fraction(1, 1000)),
        ("+1", Fraction(1)),
        ("-1", Fraction(-1)),
    ],
)
def test_valid_quantities_parse_to_their_exact_value(text: str, value: Fraction) -> None:
    quantity = parse_quantity(text)
    assert quantity.value == value
    assert quantity.text == text


@pytest.mark.parametrize(
    "text", ["", " ", "1 Mi", "1mi", "1MB", "Mi", "abc", "1.2.3", "1e", "e3", "--1", "1Ki2",
             "0x10", "1,5", "1e99"],
)
def test_invalid_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
    assert not is_quantity(text)


def test_non_strings_are_rejected_with_a_hint() -> None:
    with pytest.raises(QuantityError, match="must be a string"):
        parse_quantity(1)  # type: ignore[arg-type]


def test_milli_and_int_values_round_up() -> None:
    assert parse_quantity("250m").milli_value() == 250
    assert parse_quantity("1").milli_value() == 1000
    assert parse_quantity("0.0001").milli_value() == 1
    assert parse_quantity("1Ki").int_value() == 1024
    assert parse_quantity("0.5").int_value() == 1
    assert parse_quantity("1500m").int_value() == 2


def test_equal_amounts_in_different_units_compare_equal() -> None:
    assert parse_quantity("100m").value == parse_quantity("0.1").value
    assert parse_quantity("1Gi").value == parse_quantity("1024Mi").value
    assert parse_quantity("500m") < parse_quantity("1")
    assert parse_quantity("1Gi") <= parse_quantity("1Gi")
    assert not parse_quantity("1G") <= parse_quantity("900Mi")
