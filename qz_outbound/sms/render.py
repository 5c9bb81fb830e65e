"""SMS texts: a campaign template rendered per customer, framed and split into parts.

Every SMS is ``signature + body + opt-out text`` (contact-policy.md "What an
SMS looks like"), the body coming from ``include/templates/sms/<template>.j2``.
A template that does not render completely for a customer (a missing value, a
syntax error, an empty body, a character UCS-2 cannot carry, too many parts)
raises :class:`RenderError` with the reason: that customer's message stops,
nothing half-filled is ever produced.

Texts are UCS-2 (data_coding 8): up to 70 characters is one SMS; longer ones
are split by ``smpplib.gsm.make_parts`` into parts of 67 characters behind a
6-byte UDH (esm_class 0x40), which the handset joins into one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jinja2
from smpplib import consts as smpp_consts
from smpplib import gsm

from qz_outbound import TEMPLATE_DIR
from qz_outbound.sms.settings import MessageConfig

SMS_TEMPLATE_DIR = TEMPLATE_DIR / "sms"
UCS2 = smpp_consts.SMPP_ENCODING_ISO10646  # data_coding 8
SINGLE_SMS_CHARS = 70
PART_CHARS = 67


class RenderError(ValueError):
    """A message that cannot be rendered for a customer; ``reason`` says why (no customer data)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RenderedSms:
    text: str
    parts: tuple[bytes, ...]   # short_message of each part, UDH included
    esm_class: int
    data_coding: int


@lru_cache(maxsize=4)
def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,   # a missing value is an error, never an empty string
        autoescape=False,
        auto_reload=False,                  # templates are files of a release: no stat() per message
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_body(template: str, context: Mapping[str, Any], directory: Path = SMS_TEMPLATE_DIR) -> str:
    """The campaign's text for one customer, without signature and opt-out."""
    try:
        tmpl = _environment(Path(directory)).get_template(f"{template}.j2")
        body = tmpl.render(**context)
    except jinja2.TemplateNotFound:
        raise RenderError(f"template {template!r} not found under include/templates/sms") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {template!r}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {template!r} line {exc.lineno}: {exc.message}") from None
    except Exception as exc:  # a filter or value that fails: stop this customer's message
        raise RenderError(f"template {template!r}: {type(exc).__name__}: {exc}") from None
    # one SMS is one paragraph of Chinese: template line breaks are layout, not content
    body = "".join(line.strip() for line in body.splitlines())
    if not body:
        raise RenderError(f"template {template!r} rendered an empty text")
    return body


def frame(body: str, message: MessageConfig) -> str:
    """Signature first, opt-out instruction last."""
    return f"{message.signature}{body}{message.opt_out_text}"


def split(text: str, max_parts: int) -> RenderedSms:
    """UCS-2 parts for ``text`` (one part up to 70 characters, else UDH-concatenated parts of 67)."""
    if len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text):
        # UCS-2 cannot carry it, and a surrogate pair could be cut at a part boundary
        raise RenderError("text contains a character outside UCS-2 (e.g. an emoji)")
    parts, data_coding, esm_class = gsm.make_parts(text, encoding=UCS2)
    if len(parts) > max_parts:
        raise RenderError(f"text needs {len(parts)} SMS parts, more than the {max_parts} allowed")
    return RenderedSms(text=text, parts=tuple(parts), esm_class=esm_class, data_coding=data_coding)


def render_sms(
    template: str,
    context: Mapping[str, Any],
    message: MessageConfig,
    directory: Path = SMS_TEMPLATE_DIR,
) -> RenderedSms:
    """Render, frame and split one customer's SMS, or raise :class:`RenderError`."""
    return split(frame(render_body(template, context, directory), message), message.max_parts)


def with_reference(sms: RenderedSms, key: str, max_parts: int) -> RenderedSms:
    """The same message with a 16-bit concatenation reference (IEI 0x08) derived from ``key`` (its
    message id), for messages rendered one by one. smpplib draws an 8-bit reference at random: one
    handset receiving several long messages (a shop owner, one SMS per recommendation) then gets two
    with the same reference about as often as not, and may join their parts. Parts carry 66
    characters (the UDH is a byte longer); a text that would need more than ``max_parts`` that way
    keeps smpplib's form. Single-part messages are returned as they are.
    """
    if len(sms.parts) == 1:
        return sms
    import hashlib

    ref = int(hashlib.sha256(key.encode()).hexdigest()[:4], 16)
    data = sms.text.encode("utf-16-be")
    chunks = [data[i:i + 132] for i in range(0, len(data), 132)]
    if len(chunks) > max_parts:
        return sms
    parts = tuple(bytes([6, 8, 4, ref >> 8, ref & 0xFF, len(chunks), n]) + chunk
                  for n, chunk in enumerate(chunks, start=1))
    return RenderedSms(text=sms.text, parts=parts, esm_class=sms.esm_class, data_coding=sms.data_coding)


def decode_short_message(payload: bytes, data_coding: int, esm_class: int = 0) -> str:
    """Text of a short_message (UDH stripped when esm_class says there is one)."""
    if esm_class & 0x40 and payload:
        payload = payload[1 + payload[0]:]
    if data_coding == 8:
        return payload.decode("utf-16-be", errors="replace")
    if data_coding in (3, 4):
        return payload.decode("latin-1")
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError:
        return payload.decode("utf-8", errors="replace")
