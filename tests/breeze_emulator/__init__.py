"""A local Breeze (ICICI Direct) emulator for end-to-end tests of the Breeze adapter through the real SDK."""

from tests.breeze_emulator.contracts import Contract, default_contracts
from tests.breeze_emulator.faults import Faults
from tests.breeze_emulator.rest import Call
from tests.breeze_emulator.server import BreezeEmulator

__all__ = ["BreezeEmulator", "Call", "Contract", "Faults", "default_contracts"]
