"""Generates realistic support mail for the benchmarks: Spanish text, mixed sizes and shapes.

    .venv/bin/python bench/mailgen.py --count 1000 --maildir /tmp/mails [--seed 1]

The mix, per message: plain text or multipart/alternative (text + HTML) about half and
half; about half carry 1–3 attachments of 5–200 KB (mostly small: PDF, JPEG, PNG, DOCX
and text logs); about 15 % answer an earlier message of the same customer (``Re:``,
In-Reply-To, References, quoted text) and 2 % are out-of-office auto-replies
(``Auto-Submitted: auto-replied``). Every message has a unique Message-ID. The same seed
and count give byte-identical output, so the ceiling and the daemon see the same mail.
1,000 messages come to about 35 MB with about 880 attachments, the shape of the corpus in
PERFORMANCE.md.

As a module: ``generate(count, seed)`` returns the messages as bytes (LF line endings,
as stored in mbox/Maildir files), ``for_smtp(mails)`` gives each one's envelope sender
and DATA payload, and ``write_maildir(path, mails)`` writes them into ``cur/`` of a new
Maildir.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from html import escape
from pathlib import Path

SUPPORT = "soporte@example.com"
EPOCH = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

_FIRST = (
    "Ana Beto Carla Darío Elena Facundo Gabriela Hernán Inés Julián Karina Lucía Martín "
    "Noelia Óscar Paula Ramiro Sofía Tomás Valeria"
)
_LAST = (
    "Pérez González Rodríguez Fernández López Martínez Gómez Díaz Sánchez Romero Suárez "
    "Álvarez Torres Ruiz Acosta Benítez"
)
FIRST, LAST = _FIRST.split(), _LAST.split()
SUBJECTS = [
    "No tengo Internet",
    "Servicio lento por la noche",
    "Se quemó el módem",
    "Factura duplicada",
    "Cambio de plan",
    "No vino el técnico",
    "Corte de servicio",
    "Consulta administrativa",
    "No tengo señal",
    "Reclamo por cobro indebido",
    "Mudanza del servicio",
    "Sugerencia sobre la atención",
    "Baja del servicio",
    "Problema con el router Wi-Fi",
    "Cambio de titular",
    "Pedido de factura A",
]
GREETINGS = ["Buenas tardes,", "Hola, buen día.", "Estimados:", "Buenas noches.", "Hola,"]
PROBLEMS = [
    "Desde hace tres días el servicio funciona de manera intermitente y se corta varias "
    "veces por hora.",
    "Por la mañana la conexión anda bien, pero a partir de las seis de la tarde se vuelve "
    "muy lenta.",
    "La luz de internet del módem parpadea en naranja y no logro navegar desde ningún equipo.",
    "Este mes me llegaron dos facturas por el mismo período y ambas fueron debitadas de mi cuenta.",
    "El técnico tenía que venir el martes entre las 9 y las 13 y nunca se presentó ni avisó.",
    "Quisiera pasar al plan de 300 megas y saber si el cambio tiene algún costo adicional.",
    "Después de la tormenta del fin de semana el equipo dejó de encender por completo.",
    "Necesito una factura A a nombre de la empresa para presentar en la contaduría.",
]
DETAILS = [
    "Ya reinicié el módem varias veces y probé con el cable conectado directamente a la "
    "computadora, sin cambios.",
    "Trabajo desde casa y necesito una conexión estable para las videollamadas.",
    "Les adjunto una captura de la prueba de velocidad y una foto del equipo.",
    "Mi número de cliente figura en la última factura; el servicio está a nombre de mi madre.",
    "Estoy disponible de lunes a viernes entre las nueve y las trece para recibir a un técnico.",
    "Llamé dos veces al centro de atención y me dijeron que lo iban a revisar, pero sigue igual.",
    "El problema empezó justo después del último corte programado en el barrio.",
    "Los vecinos del edificio tienen el mismo inconveniente desde el lunes.",
]
CLOSINGS = [
    "Quedo atento a su respuesta.",
    "Muchas gracias.",
    "Saludos cordiales.",
    "Aguardo novedades, gracias.",
    "Desde ya, muchas gracias por la atención.",
]
FOLLOW_UPS = [
    "Les escribo de nuevo porque el problema continúa.",
    "¿Tienen alguna novedad sobre mi reclamo?",
    "Hoy volvió a pasar lo mismo, esta vez durante toda la tarde.",
    "Gracias por responder; les paso los datos que me pidieron.",
]
LOG_LINES = [
    "PPPoE: tiempo de espera agotado al negociar la sesión",
    "DSL: sincronización perdida, reintentando",
    "WAN: dirección IP renovada",
    "Wi-Fi: canal cambiado por interferencia",
]
# (file name, content type, leading bytes) of binary attachments.
BINARY_KINDS = [
    ("factura.pdf", "application/pdf", b"%PDF-1.4\n"),
    ("foto_modem.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("captura.png", "image/png", b"\x89PNG\r\n\x1a\n"),
    (
        "nota.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        b"PK\x03\x04",
    ),
]


@dataclass
class _Sent:
    """What a later reply needs to know about an earlier message."""

    sender: str
    name: str
    subject: str
    message_id: str
    text: str
    date: datetime


def _customer(rng: random.Random, n: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}{n}".lower().translate(str.maketrans("áéíóúñÁÉÍÓÚÑ", "aeiounAEIOUN"))
    return f"{first} {last}", f"{local}@clientes.example.net"


def _text(rng: random.Random, name: str, follow_up: bool) -> str:
    paragraphs = [rng.choice(GREETINGS)]
    if follow_up:
        paragraphs.append(rng.choice(FOLLOW_UPS))
    body = rng.sample(PROBLEMS, rng.randint(1, 2)) + rng.sample(DETAILS, rng.randint(1, 4))
    paragraphs += [" ".join(body[i : i + 2]) for i in range(0, len(body), 2)]
    if rng.random() < 0.08:  # now and then a pasted log makes a long message
        lines = [
            f"2026-03-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} "
            f"{rng.choice(LOG_LINES)}"
            for _ in range(rng.randint(40, 200))
        ]
        paragraphs.append("Registro del módem:\n" + "\n".join(lines))
    phone = f"Tel. 11 {rng.randint(4000, 6999)}-{rng.randint(1000, 9999)}"
    paragraphs += [rng.choice(CLOSINGS), f"{name}\n{phone}"]
    return "\n\n".join(paragraphs) + "\n"


def _html(text: str) -> str:
    paragraphs = "".join(
        f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in text.strip().split("\n\n")
    )
    return f'<html><body style="font-family: Arial">{paragraphs}</body></html>\n'


def _attachment(rng: random.Random, n: int) -> tuple[bytes, str, str, str]:
    """(data, maintype, subtype, file name); sizes 5–200 KB, mostly small."""
    size = int(5 * 1024 * 40 ** (rng.random() ** 2.3))
    if rng.random() < 0.15:
        line = f"{rng.choice(LOG_LINES)} (equipo {n})\n".encode()
        return (line * (size // len(line) + 1))[:size], "text", "plain", f"registro_{n}.txt"
    filename, content_type, magic = rng.choice(BINARY_KINDS)
    maintype, subtype = content_type.split("/")
    stem, ext = filename.rsplit(".", 1)
    return magic + rng.randbytes(size - len(magic)), maintype, subtype, f"{stem}_{n}.{ext}"


def generate(count: int, seed: int = 1, *, to: str = SUPPORT) -> list[bytes]:
    """``count`` messages as bytes with LF line endings; the same arguments, the same bytes."""
    rng = random.Random(seed)
    sent: list[_Sent] = []
    mails: list[bytes] = []
    for n in range(count):
        date = EPOCH + timedelta(minutes=7 * n + rng.randint(0, 6))
        msg = EmailMessage()
        original = rng.choice(sent[-50:]) if sent and rng.random() < 0.15 else None
        if original is not None:
            name, sender = original.name, original.sender
            subject = "Re: " + original.subject.removeprefix("Re: ")
        else:
            name, sender = _customer(rng, n)
            subject = rng.choice(SUBJECTS)
        message_id = f"{seed}.{n}.{rng.getrandbits(48):012x}@clientes.example.net"
        msg["From"] = f"{name} <{sender}>"
        msg["To"] = to
        msg["Date"] = format_datetime(date)
        msg["Message-ID"] = f"<{message_id}>"
        if rng.random() < 0.02:  # an autoresponder answering on the customer's behalf
            msg["Subject"] = f"Respuesta automática: {subject}"
            msg["Auto-Submitted"] = "auto-replied"
            msg.set_content(f"Estoy fuera de la oficina hasta el lunes.\n\n{name}\n")
            mails.append(msg.as_bytes(policy=default_policy))
            continue
        msg["Subject"] = subject
        text = _text(rng, name, follow_up=original is not None)
        if original is not None:
            msg["In-Reply-To"] = f"<{original.message_id}>"
            msg["References"] = f"<{original.message_id}>"
            when = original.date.strftime("%d/%m/%Y %H:%M")
            quoted = "\n".join("> " + line for line in original.text.splitlines())
            text += f"\nEl {when}, {original.name} <{original.sender}> escribió:\n{quoted}\n"
        msg.set_content(text)
        if rng.random() < 0.45:
            msg.add_alternative(_html(text), subtype="html")
        if rng.random() < 0.55:
            for _ in range(rng.choices((1, 2, 3), weights=(60, 25, 15))[0]):
                data, maintype, subtype, filename = _attachment(rng, n)
                msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        sent.append(_Sent(sender, name, subject, message_id, text, date))
        mails.append(_fixed_boundaries(msg, f"{seed}.{n}").as_bytes(policy=default_policy))
    return mails


def _fixed_boundaries(msg: EmailMessage, tag: str) -> EmailMessage:
    # The email package draws boundaries from the global random module; fixed ones keep
    # the output byte-identical from run to run.
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_mailgen_{tag}_{i}")
    return msg


def wire(raw: bytes) -> bytes:
    """CRLF line endings, as SMTP DATA carries them (RFC 5321 §2.3.8)."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


Mail = tuple[str, bytes]  # envelope sender, DATA payload
_FROM = re.compile(rb"^From:[^\n]*?<([^<>\s]+@[^<>\s]+)>", re.M | re.I)
_LEADING_DOT = re.compile(rb"^\.", re.M)


def for_smtp(mails: list[bytes]) -> list[Mail]:
    """Each mail's envelope sender (its From address) and the bytes to send after DATA:
    CRLF, dot-stuffed (RFC 5321 §4.5.2) and ending with the ``.`` line."""
    found: list[Mail] = []
    for raw in mails:
        sender = _FROM.search(raw)
        payload = _LEADING_DOT.sub(b"..", wire(raw)) + b".\r\n"
        found.append((sender.group(1).decode() if sender else "x@example.net", payload))
    return found


def write_maildir(path: Path, mails: list[bytes]) -> Path:
    """A new Maildir at ``path`` with every message in ``cur/``, in order, marked seen."""
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    start = int(EPOCH.timestamp())
    for n, raw in enumerate(mails):
        (path / "cur" / f"{start + n}.M{n:06d}P0.mailgen:2,S").write_bytes(raw)
    return path


def attachment_count(raw: bytes) -> int:
    return raw.count(b"Content-Disposition: attachment")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1000, help="messages to generate")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same messages")
    parser.add_argument("--maildir", type=Path, required=True, help="new Maildir to write")
    args = parser.parse_args(argv)
    mails = generate(args.count, args.seed)
    write_maildir(args.maildir, mails)
    size = sum(len(m) for m in mails) / 1e6
    attachments = sum(attachment_count(m) for m in mails)
    print(f"{len(mails)} messages, {size:.1f} MB, {attachments} attachments in {args.maildir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
