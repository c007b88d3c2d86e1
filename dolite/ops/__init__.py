"""Operations on stored databases: snapshots (import/export), point-in-time restore, admin."""
