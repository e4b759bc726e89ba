"""Text cleaning shared by every tokenizer user (teacher, student, analyses).

Any Python ``str`` is accepted: lone UTF-16 surrogates (invalid UTF-8, e.g.
``"\\udcff"``) become U+FFFD, and control characters other than tab, newline
and carriage return are deleted, as BERT's own normaliser does, so MS MARCO's
mojibake (e.g. ``"\\xe2\\x80\\x99"``) tokenises exactly as in ``transformers``.

>>> clean_text("fl\\x00ea\\udcff")
'flea\\ufffd'
"""

from __future__ import annotations

import re

_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(text: str, max_chars: int | None = None) -> str:
    """Clean ``text`` (see the module docstring), cut to ``max_chars`` if given."""
    if not isinstance(text, str):
        raise TypeError(f"expected text as str, got {type(text).__name__}")
    if max_chars is not None:
        text = text[:max_chars]
    text = _SURROGATES.sub("\ufffd", text)
    return _CONTROL.sub("", text)
