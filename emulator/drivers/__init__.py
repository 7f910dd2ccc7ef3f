"""Storage drivers: where bytes live, behind one narrow interface (see :mod:`.base`)."""
