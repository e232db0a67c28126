"""A cheaper key for the archive store's repository.

restic derives the key that opens a repository from its password with scrypt, at parameters
``restic init`` calibrates to cost about half a second of CPU (N=2^15, r=8, p=6 on the test
machine), and pays that again on every command: a scheduled night runs restic a dozen
times, ``opskit backups`` once per listing. The store's password is 256 random bits that
opskit generated (:func:`opskit.restic.create_password_file`), which no key derivation makes
any stronger, so after ``init`` opskit wraps the repository's master key once more, under
restic's own minimum parameters (N=2^14, r=8, p=1: about 0.05 s), in restic's key format
(``doc/design.rst``, "Keys, Encryption and MAC"), and keeps the new key only once restic has
opened the repository with it alone. Offsite repositories, whose password a user may have
chosen, keep restic's calibrated key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opskit.host import Host

FAST = {"N": 1 << 14, "r": 8, "p": 1}
SALT_BYTES = 64
NONCE_BYTES = 16
MAC_BYTES = 16


class KeyFileError(Exception):
    """The key could not be read or opened with the password."""


def derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The 64 bytes restic derives: 32 for AES-256-CTR, then 16 + 16 for Poly1305-AES."""
    memory = 128 * r * n * 2 + (1 << 20)
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=memory, dklen=64)


def _mac(user: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    aes = Cipher(algorithms.AES(user[32:48]), modes.ECB()).encryptor()
    s = aes.update(nonce) + aes.finalize()
    return Poly1305.generate_tag(user[48:64] + s, ciphertext)  # Poly1305 clamps r itself


def _ctr(user: bytes, nonce: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ctr = Cipher(algorithms.AES(user[:32]), modes.CTR(nonce)).encryptor()
    return ctr.update(data) + ctr.finalize()


def open_key(document: dict[str, object], password: str) -> bytes:
    """The master key's JSON from a key file's *document*, opened with *password*."""
    try:
        salt = base64.b64decode(str(document["salt"]))
        data = base64.b64decode(str(document["data"]))
        n, r, p = (int(str(document[name])) for name in ("N", "r", "p"))
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyFileError(f"not a restic key: {exc}") from None
    if document.get("kdf") != "scrypt" or len(data) < NONCE_BYTES + MAC_BYTES:
        raise KeyFileError("not a restic scrypt key")
    user = derive(password, salt, n, r, p)
    nonce, ciphertext, tag = data[:NONCE_BYTES], data[NONCE_BYTES:-MAC_BYTES], data[-MAC_BYTES:]
    if _mac(user, nonce, ciphertext) != tag:
        raise KeyFileError("the password does not open this key")
    return _ctr(user, nonce, ciphertext)


def seal_key(document: dict[str, object], master: bytes, password: str) -> dict[str, object]:
    """A copy of key *document* holding *master* under :data:`FAST` parameters."""
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    user = derive(password, salt, FAST["N"], FAST["r"], FAST["p"])
    ciphertext = _ctr(user, nonce, master)
    data = nonce + ciphertext + _mac(user, nonce, ciphertext)
    return {
        **document,
        "kdf": "scrypt",
        **FAST,
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(data).decode(),
    }


def is_fast(document: dict[str, object]) -> bool:
    return all(document.get(name) == value for name, value in FAST.items())


def rewrap(host: Host, repository: str, password_file: str, opens: Callable[[], bool]) -> bool:
    """Give the local *repository* (one key, opened by *password_file*) a key under
    :data:`FAST` parameters. *opens* runs restic against the repository and says whether it
    opened; the old key is removed only after restic opened the repository with the new
    key alone, and is put back otherwise. Return whether the repository has a fast key."""
    keys = posixpath.join(repository, "keys")
    names = [name for name in host.listdir(keys) if len(name) == 64]
    if len(names) != 1:
        return False  # several keys: the user manages them
    old = posixpath.join(keys, names[0])
    document = json.loads(host.read_text(old))
    if is_fast(document):
        return True
    password = host.read_text(password_file).strip()  # as restic reads a password file
    new_document = seal_key(document, open_key(document, password), password)
    content = json.dumps(new_document, separators=(",", ":")).encode()
    new = posixpath.join(keys, hashlib.sha256(content).hexdigest())
    with host.open_write(new + ".new") as stream:
        stream.write(content)
    host.run(["chmod", "0400", "--", new + ".new"])
    host.run(["mv", "--", new + ".new", new])
    aside = old + ".replaced"  # restic skips a key file whose name is not an ID
    host.run(["mv", "--", old, aside])
    if opens():
        host.run(["rm", "-f", "--", aside])
        return True
    host.run(["mv", "--", aside, old])
    host.run(["rm", "-f", "--", new])
    return False
