"""What a chain backend is: the duties docs/design.md section 4 lists, as typed protocols.

- ``types``: the values exchanged with a backend (``BackendInfo``, ``TxReceipt``, the chain
  events, ``LedgerError``...);
- ``roles``: one protocol per concern (``ChainSource``, ``Keys``, ``Enforcer``,
  ``FeeEstimator``, ``ChainRules``, ``TestLedger``, ``AppEnforcer``) and the optional roles
  (``EventFetcher``, ``ClockFetcher``, ``ChannelRecords``, ``Deployments``, ``OpenTerms``,
  ``Wallet``,
  ``CoinWallet``);
- ``protocol``: ``ChainBackend``, all required roles on one object, and ``BackendFactory``.

Everything is re-exported here: a backend imports ``chenilles_hub.backend`` (and
``chenilles_hub.core``), never ``chenilles_hub.node``. The node finds implementations only
through the plugin manager (``chenilles_hub.plugins``), so a backend installed from PyPI by
a third party is indistinguishable from a built-in one.
"""

from .protocol import REQUIRED_ROLES as REQUIRED_ROLES
from .protocol import BackendFactory as BackendFactory
from .protocol import ChainBackend as ChainBackend
from .protocol import asset_info as asset_info
from .protocol import missing_methods as missing_methods
from .protocol import role_methods as role_methods
from .roles import AppEnforcer as AppEnforcer
from .roles import ChainRules as ChainRules
from .roles import ChainSource as ChainSource
from .roles import ChannelRecords as ChannelRecords
from .roles import ClockFetcher as ClockFetcher
from .roles import CoinWallet as CoinWallet
from .roles import Deployments as Deployments
from .roles import Enforcer as Enforcer
from .roles import EventFetcher as EventFetcher
from .roles import FeeEstimator as FeeEstimator
from .roles import Keys as Keys
from .roles import OpenTerms as OpenTerms
from .roles import TestLedger as TestLedger
from .roles import Wallet as Wallet
from .types import FEE_OPERATIONS as FEE_OPERATIONS
from .types import Account as Account
from .types import AmountOutOfRange as AmountOutOfRange
from .types import AppDispute as AppDispute
from .types import AssetInfo as AssetInfo
from .types import BackendInfo as BackendInfo
from .types import BadPreimage as BadPreimage
from .types import ChainEvent as ChainEvent
from .types import ChannelError as ChannelError
from .types import Concluded as Concluded
from .types import Funded as Funded
from .types import InvalidParams as InvalidParams
from .types import LedgerError as LedgerError
from .types import NewBlock as NewBlock
from .types import NothingToTake as NothingToTake
from .types import NotRegistered as NotRegistered
from .types import NotYet as NotYet
from .types import PreimageRevealed as PreimageRevealed
from .types import Progressed as Progressed
from .types import Registered as Registered
from .types import Reorged as Reorged
from .types import TooManyHtlcs as TooManyHtlcs
from .types import TxReceipt as TxReceipt
from .types import UnknownAsset as UnknownAsset
from .types import UnmineableState as UnmineableState
