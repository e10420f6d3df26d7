"""``python -m bot`` is ``qcc-bot``."""

from bot.cli import main

main()
