"""Why a Bitcoin channel has exactly two members (the refusal's text, and docs/bitcoin.md).

A Bitcoin channel is a penalty channel (BOLT 3): each member holds its own commitment
transaction and, on every update, hands the other the secret that revokes its previous one,
so publishing an old state forfeits everything to the member it cheated. With N members
this does not generalize soundly: a revoked commitment must be punishable by each of the
N-1 others, the penalty must be split so no honest member is left short while colluding
members can still claim, and a member who cheats together with another can make the
penalty pay the accomplice. Each member would also need a commitment per possible
publisher and per counterparty, growing exponentially or requiring trust. Fixing this
needs covenants or a signature over the state's version in script (eltoo-style channels
on SIGHASH_ANYPREVOUT, or OP_CTV / OP_CAT constructions), which Bitcoin does not have today.
"""

TWO_PARTY_ONLY = (
    "Bitcoin channels are two-party: revocation-based penalty channels do not generalize "
    "to more members without new opcodes (e.g. SIGHASH_ANYPREVOUT for eltoo); open an "
    "N-party channel on EVM or Solana"
)
