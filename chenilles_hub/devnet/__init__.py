"""``chenilles devnet``: shared local ledgers as separate processes, each speaking its chain's
real RPC protocol, and ready-made node configs for a hub and a few users.

Backends take part through an optional role of their plugin factory
(:class:`~.role.DevnetRole`): how to start their ledger process, how to provision it
(deploy contracts, fund accounts), and how to make it mine or move its clock. The hub never
names a backend: a third-party chain that implements the role joins the devnet like the
in-tree ones.
"""
