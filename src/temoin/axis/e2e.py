"""The Body Worn system's end-to-end encryption of clips and GNSS trails (WantEncryption).

Per the integration API's example service: each content object has a key file (JSON) whose `EncryptedKey` is the
content key wrapped with the connection's RSA public key (OAEP, as `openssl rsautl -oaep`: SHA-1), and whose
`ContentEncryptionIV` is the IV of AES-256-CBC (PKCS#7 padding, as `openssl enc -aes-256-cbc`) over the file.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Iterator

import orjson
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from temoin.errors import InvalidInput


class Undecryptable(InvalidInput):
    """An encrypted object Témoin cannot open: a key file it cannot read, a key it does not hold, a cut ciphertext."""


_OAEP = asym.OAEP(mgf=asym.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303 - RSA-OAEP with SHA-1 is what Axis cameras use; OAEP-SHA1 is not broken


class KeyFile:
    def __init__(self, raw: bytes) -> None:
        try:
            doc = orjson.loads(raw)
            self.encrypted_key = base64.b64decode(doc["EncryptedKey"], validate=True)
            self.iv = base64.b64decode(doc["ContentEncryptionIV"], validate=True)
            self.public_key_id = str(doc.get("PublicKeyId") or "")
        except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
            raise Undecryptable(
                "the key file is not the JSON the Body Worn system writes (EncryptedKey, ContentEncryptionIV)"
            ) from None
        if len(self.iv) != 16:
            raise Undecryptable("the key file's ContentEncryptionIV is not 16 bytes")


def decrypt(private_key: RSAPrivateKey, key_file: KeyFile, ciphertext: Iterable[bytes]) -> Iterator[bytes]:
    """The clip's plaintext, streamed (the ciphertext may be a whole recording)."""
    try:
        content_key = private_key.decrypt(key_file.encrypted_key, _OAEP)
    except ValueError:
        raise Undecryptable(
            f"the clip's content key does not open with Témoin's private key {key_file.public_key_id!r}"
        ) from None
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(key_file.iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    for chunk in ciphertext:
        out = unpadder.update(decryptor.update(chunk))
        if out:
            yield out
    try:
        yield unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise Undecryptable("the encrypted clip is truncated or altered (bad padding)") from None


def encrypt(public_key: RSAPublicKey, public_key_id: str, plaintext: bytes) -> tuple[bytes, bytes]:
    """What a camera does (the simulated Body Worn system): (ciphertext, key file JSON)."""
    content_key, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    key_file = {
        "EncryptedKey": base64.b64encode(public_key.encrypt(content_key, _OAEP)).decode(),
        "ContentEncryptionIV": base64.b64encode(iv).decode(),
        "PublicKeyId": public_key_id,
    }
    return ciphertext, orjson.dumps(key_file, option=orjson.OPT_INDENT_2)
