"""Thin Bolt listeners: ack at once, then hand the work to ``bot.flows`` in the background."""
