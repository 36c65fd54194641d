"""Value types and pure rules. Imports the standard library only."""
