"""Callback signatures and AES envelopes, through wechatpy's crypto.

wechatpy compares signatures with `!=`; every signature is checked here first, in constant
time, and wechatpy only decrypts what passed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import ChannelSettings
from bot.wechat.message_xml import Rejected, check_xml, sanitize


@dataclass(frozen=True)
class Envelope:
    """The message XML as sent, and whether the reply must be encrypted too."""

    xml: str
    encrypted: bool


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted parts, concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(given: str | None, *parts: str) -> None:
    expected = sign(*parts).encode()
    if not given or not hmac.compare_digest(expected, given.encode("utf-8", "replace")):
        raise Rejected(403, "bad signature")


def _args(args: Mapping[str, str], *names: str) -> list[str]:
    missing = [name for name in names if not args.get(name)]
    if missing:
        raise Rejected(400, f"missing {', '.join(missing)}")
    return [args[name] for name in names]


def _receiver(settings: ChannelSettings) -> str:
    return settings.corp_id if settings.kind == "work" else settings.app_id


def _prp(settings: ChannelSettings):  # type: ignore[no-untyped-def]
    if not settings.aes_key:
        raise Rejected(400, "encrypted callback but WECHAT_AES_KEY is not set")
    return _cipher(settings.kind, settings.aes_key)


@functools.lru_cache(maxsize=8)
def _cipher(kind: str, aes_key: str):  # type: ignore[no-untyped-def]
    """wechatpy's AES envelope for a key, built once (it holds no per-message state)."""
    key = base64.b64decode(aes_key + "=")
    if kind == "work":
        from wechatpy.enterprise.crypto import PrpCrypto
    else:
        from wechatpy.crypto import PrpCrypto

    class Prp(PrpCrypto):  # type: ignore[misc, valid-type]
        def get_random_string(self) -> str:
            # the 16 random bytes that open every envelope: from the OS, not `random`
            return secrets.token_hex(8)

    return Prp(key)


def warm_up(settings: ChannelSettings) -> None:
    """Import now what the first encrypted message would (wechatpy, requests, cryptography:
    ~0.3 s), and build the cipher."""
    from wechatpy.enterprise.exceptions import InvalidCorpIdException  # noqa: F401
    from wechatpy.exceptions import InvalidAppIdException  # noqa: F401

    if settings.aes_key:
        _cipher(settings.kind, settings.aes_key)


def decrypt(settings: ChannelSettings, encrypted: str) -> str:
    """Decrypt a verified ciphertext; the AppId / CorpId inside must be ours."""
    from wechatpy.enterprise.exceptions import InvalidCorpIdException
    from wechatpy.exceptions import InvalidAppIdException

    try:
        return _prp(settings).decrypt(encrypted, _receiver(settings))
    except Rejected:
        raise
    except (InvalidAppIdException, InvalidCorpIdException):
        raise Rejected(403, "the message is for another AppId / CorpId") from None
    except Exception:  # hostile ciphertext fails in base64, AES, padding, length or UTF-8
        raise Rejected(400, "cannot decrypt") from None


def verify_url(settings: ChannelSettings, args: Mapping[str, str]) -> str:
    """The answer to the GET that checks the callback URL."""
    if settings.kind == "work":
        signature, timestamp, nonce, echo = _args(
            args, "msg_signature", "timestamp", "nonce", "echostr"
        )
        echo = echo.replace(" ", "+")  # an unescaped + in the query arrives as a space
        check_signature(signature, settings.token, timestamp, nonce, echo)
        return decrypt(settings, echo)
    signature, timestamp, nonce, echo = _args(args, "signature", "timestamp", "nonce", "echostr")
    check_signature(signature, settings.token, timestamp, nonce)
    return echo


def open_envelope(settings: ChannelSettings, args: Mapping[str, str], body: str) -> Envelope:
    """Verify a POSTed callback and return its message XML (decrypted when it was encrypted).

    Once an AES key is set only the encrypted envelope is trusted: a plaintext POST is refused,
    and of a compatible-mode body (plaintext fields beside Encrypt) only Encrypt is read.
    """
    encrypted = settings.kind == "work" or args.get("encrypt_type", "").lower() == "aes"
    if not encrypted and settings.aes_key:
        # safe mode only (DESIGN §5): the plaintext signature covers token, timestamp and
        # nonce but not the body, so one copied from any earlier request would pass
        raise Rejected(403, "plaintext callback refused: WECHAT_AES_KEY is set, safe mode only")
    if not encrypted:  # mp plaintext mode: the signature covers token, timestamp, nonce
        signature, timestamp, nonce = _args(args, "signature", "timestamp", "nonce")
        check_signature(signature, settings.token, timestamp, nonce)
        return Envelope(body, encrypted=False)
    signature, timestamp, nonce = _args(args, "msg_signature", "timestamp", "nonce")
    outer = check_xml(body)
    ciphertext = (outer.findtext("Encrypt") or "").strip()
    if not ciphertext:
        raise Rejected(400, "no Encrypt element")
    check_signature(signature, settings.token, timestamp, nonce, ciphertext)
    return Envelope(sanitize(decrypt(settings, ciphertext)), encrypted=True)


def seal(settings: ChannelSettings, reply_xml: str, timestamp: int) -> str:
    """The encrypted passive reply: Encrypt, MsgSignature, TimeStamp, Nonce (the envelope of
    wechatpy's WeChatCrypto.encrypt_message, with the cipher built once per key)."""
    encrypted = _prp(settings).encrypt(reply_xml, _receiver(settings)).decode()
    nonce, stamp = secrets.token_hex(8), str(timestamp)
    signature = sign(settings.token, stamp, nonce, encrypted)
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{stamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
