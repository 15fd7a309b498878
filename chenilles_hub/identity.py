"""A node's identity: an ed25519 key. Its public key is the node id everywhere (channel
params, invoices, quotes, the transport handshake), and its X25519 image receives the
sealed routing instructions (onion layers) meant for this node."""

from __future__ import annotations

import functools

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing


class NodeIdentity:
    def __init__(self, signing_key: nacl.signing.SigningKey | None = None) -> None:
        self._key = signing_key or nacl.signing.SigningKey.generate()
        #: Read on every message a node handles: encoded once.
        self._node_id = self._key.verify_key.encode()
        # The X25519 image of the key, converted once: converting per onion layer cost
        # about as much as opening the layer itself (issue 19, profiled).
        self._box = nacl.public.SealedBox(
            nacl.public.PrivateKey(
                nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(self._key._signing_key)
            )
        )

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeIdentity:
        return cls(nacl.signing.SigningKey(seed))

    @property
    def node_id(self) -> bytes:
        return self._node_id

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def unseal(self, sealed: bytes) -> bytes:
        """Open a layer sealed to this node with :func:`seal_to` (raises on tampering)."""
        return self._box.decrypt(sealed)


def verify_signature(node_id: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(node_id).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def seal_to(node_id: bytes, plaintext: bytes) -> bytes:
    """Encrypt to a node knowing only its id (an anonymous sender, as onion layers need)."""
    return _sealed_box_to(node_id).encrypt(plaintext)


@functools.lru_cache(maxsize=4096)
def _sealed_box_to(node_id: bytes) -> nacl.public.SealedBox[nacl.public.PublicKey]:
    """The box to a node's X25519 image, converted once per node (a payer seals to the same
    hubs again and again). An invalid id raises, and exceptions are not cached."""
    public = nacl.public.PublicKey(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(node_id))
    return nacl.public.SealedBox(public)
