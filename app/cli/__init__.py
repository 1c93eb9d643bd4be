"""Command-line interface: `glassbox chat|bench|models|fit|pull` plus commands from plugins."""
