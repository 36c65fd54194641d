"""The headless trading engine: asyncio only, never Qt."""
