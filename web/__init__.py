"""The composition root: settings, the aiohttp app factory, the command line, health and metrics."""
