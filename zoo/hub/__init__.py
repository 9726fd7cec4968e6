"""Fetching pinned files from a hub for the recycling steps: adapters, base models, expert datasets."""
