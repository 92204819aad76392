"""Pure policy: routing, matchers, durations, build classification.

Nothing here performs I/O or imports Temporal; every function takes the clock
and the config it needs as arguments, so it tests without sleeping.
"""
