"""cartsim: in-silico trials of CAR T-cell therapy for autoimmune disease."""

__version__ = "0.1.0"
