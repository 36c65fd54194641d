"""ICICI Direct Breeze through the official breeze-connect SDK; the SDK itself loads only on connect."""

from .broker import (
    BreezeBroker,
    BreezeConfig,
    BreezeCredentials,
    BreezeStats,
    login_url,
)
from .contracts import BreezeContract
from .master import (
    MasterCache,
    MasterDownloadError,
    MasterError,
    MasterLoad,
    SecurityMaster,
    parse_master,
)
from .sdk import Endpoints

__all__ = [
    "BreezeBroker",
    "BreezeConfig",
    "BreezeContract",
    "BreezeCredentials",
    "BreezeStats",
    "Endpoints",
    "MasterCache",
    "MasterDownloadError",
    "MasterError",
    "MasterLoad",
    "SecurityMaster",
    "login_url",
    "parse_master",
]
