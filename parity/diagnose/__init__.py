"""Why a stage differs: causes fitted from measurement, each with its evidence."""
