"""Whether a backend can hold an N-party channel: the one check the node (and anyone else
opening a group channel) makes before anything is signed.

Lives beside ``backend`` rather than in the core because it reads a backend's
``BackendInfo``; the rule itself is the core's ``check_group_params``.
"""

from __future__ import annotations

from .backend import BackendInfo
from .core.errors import InvalidParams
from .core.group import GroupParams, check_group_params


def check_group_on(info: BackendInfo, params: GroupParams) -> None:
    """Raise ``InvalidParams`` (with the backend's reason) if ``info``'s backend cannot
    enforce a channel with ``params``'s members."""
    if len(params.members) > info.max_members and info.members_note:
        raise InvalidParams(
            f"{len(params.members)} members asked on {params.chain}: {info.members_note}"
        )
    check_group_params(params, info.max_members)
