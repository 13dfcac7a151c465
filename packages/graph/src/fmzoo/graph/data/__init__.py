"""Readers of the real graph files under ``fmzoo.core.data_root()/graphs``."""
