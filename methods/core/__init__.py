"""Shared machinery: backbone, add-ons, registry, specs, runner."""
