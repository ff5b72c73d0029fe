"""Stage pairing and tensor comparison: DALI's stages against the reference's."""
