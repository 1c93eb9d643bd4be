"""The main window and what wires it together: controllers, status bar, crash banner."""
