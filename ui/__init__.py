"""The desktop GUI (PySide6 + pyqtgraph) over the Qt-free core in app/.

Packages, each importing only from the ones listed after it:
chrome (main window, its controllers, status bar, crash banner) ->
chat | internals | dialogs (the features) -> infra (bridge, background tasks,
GC policy, error dialog, theme). launch.py and demo.py sit on top.
"""
