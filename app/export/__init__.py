"""Conversation export and import: JSON, CSV, a self-contained HTML report, SVG plots.

Every format carries the TurnMetrics fields under their schema names. Formats that
need Qt (PNG plot images) are rendered by ui/ through app.export.renderers, so this
package stays plain Python.
"""
