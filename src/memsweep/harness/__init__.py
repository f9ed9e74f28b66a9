"""Measure one configuration in a fresh process: probes, phases, supervisor, reference."""
