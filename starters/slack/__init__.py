"""The Slack door (ChatOps): signed slash commands and button clicks, through :mod:`operations`.

:mod:`starters.slack.routes` (the two routes, mounted by the gateway), :mod:`.verify` (signatures,
settings, retry memory), :mod:`.commands` (``/tocsin …``), :mod:`.interactions` (buttons, Reject's
dialog), :mod:`.reply` (identity, ``response_url``, ``views.open``), :mod:`.blocks` (Block Kit).
"""
