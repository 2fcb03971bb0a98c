"""Mechanistic data attribution of the recall head (digest §6, arXiv 2601.21996)."""
