"""Metrics: how well identity, expression and pose are kept, and how much a video flickers.

Pure maths on the pack's records (faces from face/, poses from spatial/, embeddings from
generate/'s cached ArcFace); no networks of their own. nodes/metrics.py wraps them.
"""
