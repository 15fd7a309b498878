"""Payment circuits: invoices, rate quotes and the sealed per-hop routing instructions.

Pure computation (signatures and sealing with pynacl), no I/O: the node uses these, the
core's routing decides the path.
"""
