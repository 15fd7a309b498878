"""Whether a node can run an app channel: checked by the opener before asking and by the
acceptor before agreeing (``Opening``), so an app channel never starts where its app
cannot be enforced."""

from __future__ import annotations

from collections.abc import Mapping

from ...backend import LedgerError
from ...core import AppRules, Asset, AssetBalances, ChannelParams, ChannelState, Participant
from ...core.errors import InvalidTransition
from .context import NodeContext


def refusal(
    ctx: NodeContext,
    chain: str,
    app: str,
    app_data: bytes,
    deposits: Mapping[Asset, tuple[int, int]],
    me: int,
) -> str | None:
    """Why this node cannot run an app channel of ``app`` on ``chain`` opening with
    ``app_data`` and these deposits ((ours, theirs) per asset; we are participant ``me``),
    or ``None`` if it can."""
    backend = ctx.backends.get(chain)
    if backend is None:
        return f"no backend for {chain}"
    if not backend.info.supports_apps:
        return (
            f"{backend.info.name} ({chain}) enforces no app rules on-chain: app channels are "
            "refused there; open them on a chain whose backend supports apps"
        )
    rules = ctx.apps.get(app)
    if rules is None:
        return f"app {app!r} is not installed on this node"
    try:
        backend.use_app(app)  # the identity it is bound to; refused if it is not
    except LedgerError:
        return f"app {app!r} has no on-chain rule bound on {chain}"
    if isinstance(rules, AppRules):
        balances = tuple(
            AssetBalances(asset, (d[0], d[1]) if me == 0 else (d[1], d[0]))
            for asset, d in deposits.items()
        )
        opening = ChannelState(bytes(32), 0, balances, app_data=app_data)
        try:
            rules.check_initial(_dummy_params(chain, app, tuple(deposits)), opening)
        except InvalidTransition as error:
            return f"{app}: {error}"
    return None


def _dummy_params(chain: str, app: str, assets: tuple[Asset, ...]) -> ChannelParams:
    """Params for an app's opening check, before the real ones exist (an app's rule reads
    only its app data and balances)."""
    seats = (Participant("0", bytes(32)), Participant("1", b"\x01" * 32))
    return ChannelParams(chain, seats, assets, 1, bytes(32), app)
