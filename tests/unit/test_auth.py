"""Bearer tokens: found by digest, exact matches only."""

from __future__ import annotations

import pytest

from gateway.auth import Principal, TokenTable
from gateway.settings import Token

TABLE = TokenTable({"s3cret-token-0001": Token("agent", "A001"), "other-token-00002": Token("unit", "U1")})


def test_a_known_token_is_its_principal() -> None:
    assert TABLE.resolve("s3cret-token-0001") == Principal("agent", "A001")
    assert TABLE.resolve("other-token-00002") == Principal("unit", "U1")


@pytest.mark.parametrize("guess", [None, "", "s3cret-token-000", "s3cret-token-00011", "S3CRET-TOKEN-0001",
                                   "s3cret-token-0001 ", "\ud800"])
def test_anything_else_is_nobody(guess: str | None) -> None:
    assert TABLE.resolve(guess) is None
