"""Test helpers shipped with dolite (sqllogictest runner)."""
