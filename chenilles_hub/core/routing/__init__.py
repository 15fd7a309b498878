"""Routing for multi-hop, cross-chain, cross-asset circuits (pure: no I/O, no clock).

Import from here; the submodules are an implementation detail of this package.
"""

from .graph import RoutingGraph
from .model import PPM, AssetRate, ChannelEdge, RateKey, Route, RouteHop, rate_book
from .prices import reference_prices
from .rules import (
    DEFAULT_MAX_HOPS,
    check_forward,
    hop_delta,
    required_incoming,
    validate_route,
)
from .search import find_route

__all__ = [
    "DEFAULT_MAX_HOPS",
    "PPM",
    "AssetRate",
    "ChannelEdge",
    "RateKey",
    "Route",
    "RouteHop",
    "RoutingGraph",
    "check_forward",
    "find_route",
    "hop_delta",
    "rate_book",
    "reference_prices",
    "required_incoming",
    "validate_route",
]
