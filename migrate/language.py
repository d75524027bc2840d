"""Pick the language of the comments a converter adds, from the comments a file already has."""

from __future__ import annotations

from collections.abc import Iterable

# Comments added beside each new key, by language. Chinese is used when the file's own
# comments are mostly Chinese, and English otherwise.
KEY_COMMENTS = {
    "en": {
        "initial_pool_size": "client objects preheated at startup",
        "max_pool_size": "ceiling of pool growth; past it connections are allocated directly",
        "max_connections": "hard cap on live connections",
        "io_entries": "completion-queue depth (u12, at most 4095)",
        "forward_batch_size": "deliveries written per batch before yielding to the event loop",
    },
    "zh": {
        "initial_pool_size": "启动时预热的客户端对象数",
        "max_pool_size": "连接池扩容上限，超过后直接分配连接",
        "max_connections": "活动连接数硬上限",
        "io_entries": "完成队列深度（u12，最大 4095）",
        "forward_batch_size": "每批转发的消息数，之后让出事件循环",
    },
}


def _is_han(character: str) -> bool:
    code = ord(character)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def comment_language(comments: Iterable[str]) -> str:
    """Return "zh" when the comments hold Han characters at least half as many as Latin letters, else "en".

    A Chinese comment often quotes English key names, so Han text counts double.
    """
    han = latin = 0
    for comment in comments:
        for character in comment:
            if _is_han(character):
                han += 1
            elif character.isascii() and character.isalpha():
                latin += 1
    return "zh" if han > 0 and han >= latin / 2 else "en"
