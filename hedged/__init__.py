"""hedged: keeps crypto holdings hedged with perpetual futures, inside hard safety limits."""

__version__ = "0.1.0"
