"""WeChat official-account signatures and AES "safe mode" (消息加解密).

Signature: SHA-1 of the sorted concatenation of token, timestamp, nonce (and
the `Encrypt` text for `msg_signature`). Safe mode: EncodingAESKey (43 base64
characters) is a 32-byte AES key, the IV its first 16 bytes; the plaintext is
16 random bytes + 4-byte big-endian length + XML + AppID, PKCS#7-padded to 32.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.errors import BadInput, BadSignature, ChannelDisabled

BLOCK = 32


def signature(*parts: str) -> str:
    """WeChat's SHA-1 signature over the sorted parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(expected: str | None, *parts: str) -> None:
    """Raise `BadSignature` unless `expected` signs the parts."""
    given = (expected or "").lower().encode("utf-8", "surrogatepass")  # any text a forger sends
    if not given or not hmac.compare_digest(given, signature(*parts).encode()):
        raise BadSignature("WeChat signature does not match")


def check_fresh(timestamp: str, now: float, window: int) -> None:
    """Raise `BadSignature` unless the signed `timestamp` is within `window` seconds of `now`."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > window:
        raise BadSignature(f"timestamp is more than {window} s from now", code="stale_timestamp")


def aes_key(encoding_aes_key: str) -> bytes:
    """The AES key an EncodingAESKey stands for; `ChannelDisabled` when it is malformed."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ChannelDisabled("INTAKE_WECHAT_AES_KEY is not base64") from exc
    if len(key) != 32:
        raise ChannelDisabled("INTAKE_WECHAT_AES_KEY must be 43 characters (32 bytes)")
    return key


class SafeMode:
    """AES encryption of pushes and replies for one official account."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        self._token, self._key, self._appid = token, aes_key(encoding_aes_key), appid

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def decrypt(self, encrypted: str, msg_signature: str | None, timestamp: str, nonce: str) -> bytes:
        """The XML inside an `Encrypt` element, after checking `msg_signature` and the AppID."""
        check_signature(msg_signature, self._token, timestamp, nonce, encrypted)
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError as exc:  # binascii.Error, or text that is not ASCII
            raise BadInput("Encrypt is not base64", code="bad_encrypt") from exc
        if not data or len(data) % 16:
            raise BadInput("Encrypt has a bad length", code="bad_encrypt")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or len(plain) < 20 + pad:
            raise BadInput("Encrypt has bad padding", code="bad_encrypt")
        plain = plain[:-pad]
        (length,) = struct.unpack(">I", plain[16:20])
        xml, appid = plain[20 : 20 + length], plain[20 + length :]
        if appid.decode("utf-8", "replace") != self._appid:
            raise BadSignature("message is for another AppID")
        return xml

    def encrypt(self, xml: str, timestamp: str, nonce: str) -> str:
        """The encrypted passive reply envelope (Encrypt, MsgSignature, TimeStamp, Nonce)."""
        body = xml.encode()
        plain = os.urandom(16) + struct.pack(">I", len(body)) + body + self._appid.encode()
        pad = BLOCK - len(plain) % BLOCK
        encryptor = self._cipher().encryptor()
        cipher_text = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        encrypted = base64.b64encode(cipher_text).decode()
        sign = signature(self._token, timestamp, nonce, encrypted)
        return (f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                f"<MsgSignature><![CDATA[{sign}]]></MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>")
