"""Channel integrations, one module each, registered in one place.

Adding a channel is one module plus one line in :data:`REGISTRY`.
"""

from __future__ import annotations

from activities.channels.base import Channel, ChannelDeps, ChannelError, SendContext, Sent
from activities.channels.console import ConsoleChannel
from activities.channels.discord import DiscordChannel
from activities.channels.email import EmailChannel
from activities.channels.github import GitHubChannel
from activities.channels.jira import JiraChannel
from activities.channels.pagerduty import PagerDutyChannel
from activities.channels.slack import SlackChannel
from activities.channels.sms import SmsChannel
from activities.channels.teams import TeamsChannel
from activities.channels.webhook import WebhookChannel

__all__ = ["REGISTRY", "Channel", "ChannelDeps", "ChannelError", "SendContext", "Sent"]

REGISTRY: dict[str, type[Channel]] = {
    "console": ConsoleChannel,
    "slack": SlackChannel,
    "email": EmailChannel,
    "github": GitHubChannel,
    "jira": JiraChannel,
    "discord": DiscordChannel,
    "teams": TeamsChannel,
    "webhook": WebhookChannel,
    "pagerduty": PagerDutyChannel,
    "sms": SmsChannel,
}
