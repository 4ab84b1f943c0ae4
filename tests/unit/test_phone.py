"""Phone numbers: any common format is accepted; Chinese numbers keep the form streams are keyed on."""

from __future__ import annotations

import pytest

from dispatch.core.errors import InvalidCommand
from dispatch.core.phone import caller_key, e164, normalise_phone, takes_sms


@pytest.mark.parametrize(("given", "canonical"), [
    # the forms stored since the first release: caller streams and read models key on them
    ("13912345678", "13912345678"), ("+8613912345678", "13912345678"), ("0086 139 1234 5678", "13912345678"),
    ("+86 139-1234-5678", "13912345678"), ("029-8888 1234", "02988881234"), ("(029) 88881234", "02988881234"),
    ("95598", "95598"), ("12345", "12345"),
    # formats the pattern list refused or misread
    ("+44 20 7946 0958", "+442079460958"), ("+44 (0)20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"), ("+1 (415) 555-0123", "+14155550123"),
    ("400 800 1234", "4008001234"), ("29 8888 1234", "02988881234"),
])
def test_common_formats_are_accepted(given: str, canonical: str) -> None:
    assert normalise_phone(given) == canonical


@pytest.mark.parametrize(("given", "canonical"), [
    ("139－1234－5678", "13912345678"), ("＋86 139 1234 5678", "13912345678"),
    ("（029）8888\u30001234", "02988881234"), ("９５５９８", "95598"), ("＋44 20 7946 0958", "+442079460958"),
])
def test_a_number_typed_in_full_width_is_that_number(given: str, canonical: str) -> None:
    """Was refused (or, for `９５５９８`, not a service number): a Chinese input method in full-width
    mode types ＋, －, （）, the ideographic space and full-width digits; a citizen's web form
    with such a number was 400. They are the ASCII characters (NFKC), keyed as the same caller."""
    assert normalise_phone(given) == canonical


@pytest.mark.parametrize("given", ["013912345678", "0139 1234 5678", "+86 013912345678",
                                   "0086-0139-1234-5678"])
def test_a_mobile_with_the_trunk_prefix_is_that_mobile(given: str) -> None:
    """PBXs in China present a mobile from another city with the long-distance 0 (外地手机加0):
    no area code starts 01 but Beijing's 010, so it is the mobile, one caller and one call-back."""
    assert normalise_phone(given) == "13912345678"


def test_a_number_written_as_a_tel_or_sip_uri_is_that_number() -> None:
    """PBXs and SIP trunks present callers as URIs (RFC 3966 `tel:`, a SIP URI's user part): a
    missed caller so presented must still get a call-back, keyed as the same caller."""
    for given in ("tel:+86-139-1234-5678", "TEL:13912345678;phone-context=+86", "sip:13912345678@10.0.0.8",
                  "sips:+8613912345678@pbx.example.cn;user=phone", " sip:013912345678@pbx:5060"):
        assert normalise_phone(given) == "13912345678"
    assert normalise_phone("tel:+44-20-7946-0958") == "+442079460958"
    for refused in ("sip:reception@pbx.example.cn", "tel:", "sip:@pbx", "mailto:13912345678"):
        with pytest.raises(InvalidCommand):
            normalise_phone(refused)


@pytest.mark.parametrize(("given", "canonical"), [
    ("01012345678", "01012345678"), ("02112345678", "02112345678"), ("075588889999", "075588889999"),
    ("0311 1234567", "03111234567"),
])
def test_landlines_keep_their_area_code(given: str, canonical: str) -> None:
    assert normalise_phone(given) == canonical


@pytest.mark.parametrize("given", ["12", "abc", "", "+86 1234", "139123456789999",
                                   "路灯坏了，联系 029 8888 1234", "call +44 20 7946 0958", "1-800-FLOWERS"])
def test_what_is_no_phone_number_is_refused(given: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        normalise_phone(given)
    assert caught.value.field == "phone"


def test_the_stream_key_of_a_foreign_number_has_no_plus() -> None:
    assert caller_key(normalise_phone("+44 20 7946 0958")) == "00442079460958"


@pytest.mark.parametrize(("canonical", "international"), [
    ("13912345678", "+8613912345678"), ("02912345678", "+862912345678"),
    ("01012345678", "+861012345678"), ("+442079460958", "+442079460958")])
def test_a_canonical_number_is_written_in_e164_for_sms_apis(canonical: str, international: str) -> None:
    assert e164(canonical) == international


@pytest.mark.parametrize(("canonical", "texts"), [
    ("13912345678", True), ("19912345678", True),  # Chinese mobiles
    ("02988886666", False), ("01012345678", False), ("95598", False),  # landlines, a service number
    ("+447911123456", True), ("+442079460958", False),  # a UK mobile, a London landline
    ("+12025550143", True),  # the US plan cannot tell mobiles from landlines: try
    ("+999", False),
])
def test_only_a_number_that_takes_texts_is_sent_an_sms(canonical: str, texts: bool) -> None:
    assert takes_sms(canonical) is texts
