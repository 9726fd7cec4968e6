"""How alike adapters are: fingerprints of their updates (norms, prototypes, sketches) and MBC clustering."""
