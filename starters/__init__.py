"""Thin entry points: the ``tocsin`` CLI and the HTTP gateway."""
