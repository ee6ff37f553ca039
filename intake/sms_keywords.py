"""The opt-out and opt-in keywords of SMS: a message that is only one of these words asks
to stop (or start again) getting our texts, rather than asking for support.

The English words are the ones US carriers and Twilio's Advanced Opt-Out treat as
standard (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; START, UNSTOP, SUBSCRIBE); the
Spanish ones are those our customers write (BAJA, ALTO, PARAR, CANCELAR; ALTA). The
whole message must be the word: case, accents, surrounding spaces and closing punctuation
aside ("Baja.", "¡ALTO!"), so that "no puedo dar de baja el servicio" stays a support
request. The confirmation is written in the keyword's language.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

OPT_OUT_WORDS: dict[str, str] = {
    "STOP": "en",
    "STOPALL": "en",
    "UNSUBSCRIBE": "en",
    "CANCEL": "en",
    "END": "en",
    "QUIT": "en",
    "BAJA": "es",
    "ALTO": "es",
    "PARAR": "es",
    "CANCELAR": "es",
}
OPT_IN_WORDS: dict[str, str] = {"START": "en", "UNSTOP": "en", "SUBSCRIBE": "en", "ALTA": "es"}
_PUNCTUATION = " \t\r\n.,;:!?¡¿\"'()"


@dataclass(frozen=True, slots=True)
class Keyword:
    word: str  # upper case, without accents
    opt_out: bool
    language: str


def bare(text: str) -> str:
    """Upper case without accents or surrounding punctuation."""
    decomposed = unicodedata.normalize("NFKD", text.strip(_PUNCTUATION))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def keyword_of(text: str) -> Keyword | None:
    """The keyword ``text`` consists of, if any."""
    if len(text) > 40:  # no keyword is that long: skip the work for ordinary messages
        return None
    word = bare(text)
    if word in OPT_OUT_WORDS:
        return Keyword(word, True, OPT_OUT_WORDS[word])
    if word in OPT_IN_WORDS:
        return Keyword(word, False, OPT_IN_WORDS[word])
    return None
