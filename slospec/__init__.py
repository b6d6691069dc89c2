"""SLO files: the native format and OpenSLO, validated against one schema and parsed once.

A floor: the alerter and the dashboard evaluate these objectives, the collector's
tiering keeps the traces that breach their thresholds; it imports no component.
"""
