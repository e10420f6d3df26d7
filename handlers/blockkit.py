"""Block Kit primitives for :mod:`handlers.blocks` (the one renderer): the :class:`Message`
type, escaping, and a builder that keeps Slack's limits without cutting anything silently.

Limits kept: at most 50 blocks, section text at most 3,000 characters (button values, at
most 2,000, carry an opaque id only). What does not fit is marked in the block and the full
text goes into a file posted in the same thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

MAX_BLOCKS = 50
SECTION_LIMIT = 2900  # Slack's 3,000 minus room for the "cut" note



@dataclass
class FileOut:
    """A file to post in the thread: inline ``content`` or a ``path`` on disk."""

    name: str
    content: str | None = None
    path: Path | None = None
    title: str | None = None


@dataclass
class Message:
    """What one Slack message consists of; ``files`` go into the same thread."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    files: list[FileOut] = field(default_factory=list)

    def ack_kwargs(self) -> dict[str, object]:
        """Arguments for ``ack()`` (an ephemeral slash-command response)."""
        return {"text": self.text, "blocks": [b.to_dict() for b in self.blocks]}


def esc(text: object) -> str:
    """Escape ``& < >`` for Slack mrkdwn (user mentions are added by the renderer only)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    return "```" + esc(text.rstrip() or " ").replace("```", "'''") + "```"


def when(dt: datetime) -> str:
    """A Slack date token shown in the reader's time zone."""
    return f"<!date^{int(dt.timestamp())}^{{date_short_pretty}} {{time}}|{dt.isoformat(timespec='seconds')}>"


class Builder:
    """Collects blocks within Slack's limits and the full plain text of everything cut."""

    def __init__(self, file_name: str, title: str) -> None:
        self.blocks: list[Block] = []
        self.full: list[str] = []
        self.cut = False
        self.file_name = file_name
        self.title = title

    def add(self, block: Block, plain: str = "") -> None:
        self.blocks.append(block)
        if plain:
            self.full.append(plain)

    def section(self, text: str, *, accessory: ButtonElement | None = None, full: str | None = None) -> None:
        """A section; ``full`` is the complete text for the attached file when ``text`` is an
        abridged view (the file is then attached)."""
        if full is not None and full != text:
            self.cut = True
        shown = text
        if len(text) > SECTION_LIMIT:
            shown = text[:SECTION_LIMIT - 80]
            if shown.count("```") % 2:
                shown += "```"
            shown += f"\n_… cut here: the full text is in `{self.file_name}` in this thread_"
            self.cut = True
        self.add(SectionBlock(text=MarkdownTextObject(text=shown), accessory=accessory), full or text)

    def context(self, text: str) -> None:
        self.add(ContextBlock(elements=[MarkdownTextObject(text=text[:2900])]), text)

    def build(self, text: str, *, keep_last: int = 0) -> Message:
        blocks = self.blocks
        if len(blocks) > MAX_BLOCKS:
            tail = blocks[len(blocks) - keep_last:] if keep_last else []
            head = blocks[:MAX_BLOCKS - 1 - len(tail)]
            note = ContextBlock(elements=[MarkdownTextObject(
                text=f"_{len(blocks) - len(head) - len(tail)} more block(s) are in `{self.file_name}`_")])
            blocks = head + [note] + tail
            self.cut = True
        files = [FileOut(self.file_name, content="\n\n".join(self.full),
                         title=self.title)] if self.cut else []
        return Message(text=text[:3000], blocks=blocks, files=files)


