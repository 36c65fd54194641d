"""Pre-trade risk: limits, the gate's checks, the kill switch and the automatic breakers."""
