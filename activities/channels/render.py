"""Rendering of the channel-neutral message for each channel's API."""

from __future__ import annotations

from typing import Any

from workflows.models import Message

__all__ = ["mrkdwn_escape", "slack_blocks", "slack_fallback_text", "trim", "SEVERITY_EMOJI", "SEVERITY_COLOR"]

SEVERITY_EMOJI = {
    "info": ":information_source:",
    "success": ":white_check_mark:",
    "warning": ":warning:",
    "error": ":x:",
    "critical": ":rotating_light:",
}
SEVERITY_COLOR = {"info": 0x0099FF, "success": 0x00FF00, "warning": 0xFFAA00, "error": 0xFF0000, "critical": 0xFF0000}


def mrkdwn_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack requires (so ``<!channel>`` in a log pings nobody)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def trim(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the last of them ``…`` when it was cut.

    Args:
        text: any text.
        limit: the most characters the result may have (from 1; 0 gives ``…`` for any non-empty text).

    Returns:
        ``text`` itself when it fits, else its start and ``…``.
    """
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def slack_fallback_text(message: Message) -> str:
    """The notification/fallback ``text`` of a Slack message, escaped like every other mrkdwn text.

    Slack parses ``text`` for ``<!channel>``, ``<@U…>`` and ``<url|label>``; the message comes
    from alerts, CI logs and people, so ``&``, ``<`` and ``>`` are escaped here and such markup
    shows literally (mentions come only from config, never from the text of a message).
    """
    text = f"{message.title}" + (f" — {message.text.splitlines()[0]}" if message.text else "")
    return trim(mrkdwn_escape(text), 3000)


def slack_blocks(message: Message) -> list[dict[str, Any]]:
    """Block Kit: header, text, fields, context, link and action buttons."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": trim(message.title.strip() or "(no title)", 150), "emoji": True},
        },
    ]
    if message.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": trim(mrkdwn_escape(message.text), 3000)}})
    fields = [
        {"type": "mrkdwn", "text": trim(f"*{mrkdwn_escape(f.title)}*\n{mrkdwn_escape(f.value)}", 2000)}
        for f in message.fields
    ]
    # Slack allows 10 fields per section and 50 blocks per message (keep room for the rest).
    for start in range(0, min(len(fields), 450), 10):
        blocks.append({"type": "section", "fields": fields[start : start + 10]})
    context = f"{SEVERITY_EMOJI.get(message.severity, '')} *{message.severity}*"
    if message.source:
        context += f" · `{mrkdwn_escape(message.source)}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    elements: list[dict[str, Any]] = []
    for i, link in enumerate(message.links[:5]):
        elements.append(
            {
                "type": "button",
                "action_id": f"tocsin_link_{i}",
                "text": {"type": "plain_text", "text": trim(link.text.strip() or "Open", 75)},
                "url": link.url,
            }
        )
    for action in message.actions[: 25 - len(elements)]:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action.action_id[:255],
            "text": {"type": "plain_text", "text": trim(action.text.strip() or action.action_id, 75)},
            "value": (action.value or action.action_id)[:2000],
        }
        if action.url:
            button["url"] = action.url
        if action.style:
            button["style"] = action.style
        elements.append(button)
    if elements:
        blocks.append({"type": "actions", "elements": elements})
    return blocks
