import pytest

from portrait.privacy import mask_contacts, pseudonymize


def test_pseudonym_is_deterministic_keyed_and_hides_the_id():
    a = pseudonymize("A2IBPI20UZIR0U", b"k1")
    assert a == pseudonymize(" A2IBPI20UZIR0U ", b"k1")
    assert a != pseudonymize("A2IBPI20UZIR0U", b"k2")
    assert a != pseudonymize("A2IBPI20UZIR0V", b"k1")
    assert "A2IBPI20UZIR0U" not in a and a.startswith("u_") and len(a) == 26


def test_empty_id_is_refused():
    with pytest.raises(ValueError):
        pseudonymize("  ", b"k")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write to bob.smith@example.co.uk today", "write to [email] today"),
        ("call 555-123-4567 now", "call [phone] now"),
        ("or (555) 123-4567.", "or [phone]."),
        ("UK: +44 20 7946 0958", "UK: [phone]"),
        ("toll free 1-800-555-1234", "toll free [phone]"),
    ],
)
def test_contacts_are_masked(text, expected):
    assert mask_contacts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Fender part 099-0818-300 fits",  # part number, not a phone
        "released 2013-07-01 for $19.99",  # date and price
        "strings 10 12 16 24 32 42, 3.5mm jack",  # gauges
        "I paid 100 200 300 over the years",
    ],
)
def test_numbers_that_are_not_contacts_stay(text):
    assert mask_contacts(text) == text
