"""memsweep: measure where PyMDP agents spend memory, and which fixes pay off."""

__version__ = "0.1.0"
