import pytest

from portrait.privacy.pseudonyms import mask_contacts, pseudonymize


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


# --- Chinese contacts ------------------------------------------------------------------


def _id_with_check(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("有问题打13912345678找我", "有问题打[phone]找我"),
        ("电话：+86 139 1234 5678", "电话：[phone]"),
        ("手机 86-13912345678 谢谢", "手机 [phone] 谢谢"),
        ("call 139-1234-5678 please", "call [phone] please"),
        ("身份证" + _id_with_check("11010519491231002") + "不要泄露", "身份证[id]不要泄露"),
        ("ID " + _id_with_check("44030419900101123"), "ID [id]"),
        ("加我QQ：123456789", "加我QQ：[qq]"),
        ("扣扣 98765432 联系", "扣扣 [qq] 联系"),
        ("邮箱 zhang.san@qq.com 已发", "邮箱 [email] 已发"),
    ],
)
def test_chinese_contacts_are_masked(text, masked):
    from portrait.privacy.pseudonyms import mask_contacts

    assert mask_contacts(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "价格 1399 元，买了 2 件，共 2798.00",
        "订单号 202311291234567890123 已发货",  # a 21-digit order number
        "订单号 139123456789012",  # 15 digits starting like a mobile
        "2023年11月29日收到，12345 号快递柜",
        "型号 X139-12345678",  # no separators of a phone, part of a model number
        "编号 110105194912310021 不对",  # 18 digits with a wrong check digit
        "买了 5 个 QQ 糖",  # QQ without a number
    ],
)
def test_numbers_that_are_not_contacts_survive(text):
    from portrait.privacy.pseudonyms import mask_contacts

    assert mask_contacts(text) == text


ADVERSARIAL = {
    "letters then @": "a" * 49_000 + "@",
    "many short local parts": ("abcdefghij@" * 9_000),
    "a dotted domain without a top level": "a@" + "b." * 25_000,
    "dots and at signs": ".@" * 25_000,
    "digits": "1" * 50_000,
    "plus signs and digits": "+1 " * 17_000,
    "phone-like groups": "555-" * 12_500,
    "QQ prefixes": "QQ:" * 16_000,
    "86 prefixes": "86 " * 16_000,
    "id-like digits": "11010519491231002" * 3_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_masking_is_linear_on_adversarial_text(name):
    """Each pattern on ~50,000 characters: well under a second (the e-mail pattern
    took 2.8 s on the first one), and twice the text takes about twice the time."""
    import time

    text = ADVERSARIAL[name]

    def seconds(t: str) -> float:
        start = time.perf_counter()
        mask_contacts(t)
        return time.perf_counter() - start

    one, two = min(seconds(text) for _ in range(3)), min(seconds(text * 2) for _ in range(3))
    assert one < 0.25, (name, one)
    assert two < 4 * one + 0.01, (name, one, two)  # linear, with room for noise


def test_addresses_after_adversarial_runs_are_still_masked():
    text = "a" * 10_000 + "@ then write to jane.doe@example.com or +44 20 7946 0958"
    masked = mask_contacts(text)
    assert "jane.doe" not in masked and "[email]" in masked and "[phone]" in masked
