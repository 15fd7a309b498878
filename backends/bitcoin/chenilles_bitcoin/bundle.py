"""The Bitcoin signature bundle: what one participant hands the other for one state.

A bundle signs the *peer's* commitment (the peer is the one who can broadcast it), so it
carries the signer's funding-key signature on that commitment, its signatures on the
peer's second-stage HTLC transactions (in the commitment's output order), and the signer's
per-commitment points for this version and the next: the peer needs the next one to sign
our next commitment. A final state's bundle also carries the signer's signature on the
cooperative closing transaction, so either side can close without another round trip.

msgpack, positional (``array_like``): small on the wire, strict to decode.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

_Sig = Annotated[bytes, msgspec.Meta(min_length=8, max_length=72)]
_Point = Annotated[bytes, msgspec.Meta(min_length=33, max_length=33)]


class BundleError(ValueError):
    """The bytes are not a well-formed Bitcoin signature bundle."""


class Bundle(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    commitment_sig: _Sig
    htlc_sigs: Annotated[tuple[_Sig, ...], msgspec.Meta(max_length=64)]
    point: _Point
    next_point: _Point
    closing_sig: Annotated[bytes, msgspec.Meta(max_length=72)] = b""


_decoder = msgspec.msgpack.Decoder(Bundle)


def encode_bundle(bundle: Bundle) -> bytes:
    return msgspec.msgpack.encode(bundle)


def decode_bundle(data: bytes) -> Bundle:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BundleError(f"malformed Bitcoin bundle: {exc}") from exc


__all__ = ["Bundle", "BundleError", "decode_bundle", "encode_bundle"]
