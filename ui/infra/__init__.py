"""What every feature uses: the engine bridge, background tasks, GC policy, error dialog, theme."""
