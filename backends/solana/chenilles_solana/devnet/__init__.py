"""A Solana devnet: a separate process serving Solana's JSON-RPC over LiteSVM.

Node processes share it through the same ``connect(url, program_id=...)`` path a real
cluster uses; it runs Solana's real runtime (LiteSVM: the SBF VM, the System and SPL Token
programs, the Ed25519 precompile), with our channel program at the fixed
:data:`genesis.PROGRAM_ID`.

Modules, each with one job: ``clock`` (slots from wall time, blockhashes), ``journal``
(durable append-only records), ``genesis`` (the starting state), ``chain`` (execute,
simulate, history), ``tokens`` (SPL balances), ``encoding`` (the RPC's shapes), ``params``
(parameter checks), ``errors`` (error codes and texts), ``rpc`` (the methods), ``server``
(HTTP, process life). See docs/solana.md, "The devnet server".
"""

from .genesis import PROGRAM_ID, TEST_MINT, TEST_MINT_AUTHORITY_SEED

__all__ = ["PROGRAM_ID", "TEST_MINT", "TEST_MINT_AUTHORITY_SEED"]
