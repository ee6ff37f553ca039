"""Generates the outbound log of a year for the log benchmark (``bench/log.py``).

``generate(rows, seed, end)`` yields the rows of ``customers``, ``cases`` (minimal: what
their foreign keys and the resend's case context need) and then ``notifications`` with
their ``delivery_attempts``, in chunks, ids given and increasing with time as in real life.
The same rows, seed and end give the same data on every engine.

The shape, per notification: created over the year before ``end`` (ids in time order); on
a case opened shortly before (about 5 notifications per case, 4 cases per customer, a few
customers with many cases); channel email 55 %, SMS 25 %, Telegram 12 %, push 8 % (push
goes to technicians; about a fifth of the rest are technicians' notices or watchers');
templates by channel and kind (acknowledgement, status change, agent reply, assignment,
note); providers email, twilio/vonage, telegram, fcm/webpush/ntfy; status mostly sent,
then suppressed, failed (SMS more often), dead, and a few pending or sending (mostly in
the last day); trigger manual (a resend of an earlier row, by an operator) about 5 %; 1–3
delivery attempts per attempted row (none for suppressed rows and for pending ones not
tried yet). Texts are Spanish, as the templates render them; the word ``portabilidad`` is
in the titles of about 0.5 % of the cases (the rare search word), ``factura`` (and its
family: ``facturación``) in about a tenth.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

VERSION = 1  # bump when the generated data changes: a reused database is then rebuilt
NOTIFICATIONS_PER_CASE = 5
CASES_PER_CUSTOMER = 4
CHUNK = 10_000
RARE_WORD = "portabilidad"
COMMON_WORD = "factura"

_FIRST = (
    "Ana Beto Carla Darío Elena Facundo Gabriela Hernán Inés Julián Karina Lucía Martín "
    "Noelia Óscar Paula Ramiro Sofía Tomás Valeria Agustina Bruno Camila Diego Emilia "
    "Federico Graciela Ignacio Jimena Leandro Marisa Nicolás Olga Pablo Rocío Santiago"
)
_LAST = (
    "Pérez González Rodríguez Fernández López Martínez Gómez Díaz Sánchez Romero Suárez "
    "Álvarez Torres Ruiz Acosta Benítez Medina Herrera Aguirre Castro Molina Ortiz Silva "
    "Rojas Vega Navarro Cabrera Ríos Ponce Luna"
)
FIRST, LAST = _FIRST.split(), _LAST.split()
DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com.ar", "outlook.com", "fibertel.com.ar")
WHEN = ("desde ayer", "desde el lunes", "desde esta mañana", "hace tres días", "desde el viernes")
_MONTHS = "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
MONTHS = _MONTHS.split()
# (title, weight): {when} and {month} are filled per case.
TITLES = (
    ("No tengo Internet {when}", 14),
    ("Sin señal en el celular {when}", 8),
    ("Se quemó el módem después de la tormenta", 3),
    ("El servicio anda muy lento por las noches", 9),
    ("No vino el técnico a la visita programada", 5),
    ("Cobro duplicado en la factura de {month}", 4),
    ("Consulta por el importe de la factura de {month}", 4),
    ("No me llegó la factura de {month}", 2),
    ("Quiero cambiar el plan contratado", 5),
    ("Solicito la baja del servicio", 4),
    ("Cambio de domicilio de la instalación", 3),
    ("El router se reinicia solo varias veces al día", 6),
    ("No puedo ingresar al portal de clientes", 5),
    ("Corte de servicio en todo el barrio", 6),
    ("La televisión se congela en algunos canales", 5),
    ("Problema con el débito automático de la tarjeta", 3),
    ("La línea fija tiene ruido y se corta {when}", 4),
    ("Actualizar los datos de contacto", 2),
    ("Error en la facturación del mes de {month}", 2),
    ("Solicitud de portabilidad numérica de mi línea", 0.5),
)
REPLIES = (
    "Revisamos su conexión y encontramos una falla en el nodo de su zona; un técnico ya "
    "está trabajando para resolverla.",
    "Le confirmamos que el importe fue corregido: verá la nota de crédito en su próxima factura.",
    "¿Podría reiniciar el módem y contarnos si las luces quedan en verde? Así descartamos "
    "un problema del equipo.",
    "Coordinamos una visita técnica para el jueves entre las 9 y las 13 horas; por favor "
    "confirme si alguien puede recibir al técnico.",
    "El cambio de plan quedará activo a partir del próximo ciclo de facturación.",
    "Registramos la baja del servicio; el equipo se retira en los próximos diez días hábiles.",
    "Restablecimos su contraseña del portal; le enviamos un enlace para elegir una nueva.",
    "El corte fue por una obra en la vía pública y el servicio ya quedó normalizado.",
    "Necesitamos una foto del frente del módem para identificar el modelo, por favor.",
    "Actualizamos sus datos de contacto; a partir de ahora le escribiremos a esta dirección.",
    "Hicimos una prueba remota y la velocidad contratada llega bien hasta su equipo.",
    "Le pedimos disculpas por la demora; el caso quedó con prioridad alta.",
)
CATEGORIES = ("Problema Grave", "Problema menor", "Otro tipo de Problema")
STATUS_NAMES = ("Abierta", "En Progreso", "Esperando Respuesta", "Cerrada")
TECHNICIANS = (
    "Lucía Fernández", "Martín Acosta", "Paula Rojas", "Diego Herrera", "Sofía Molina",
    "Hernán Castro", "Valeria Ortiz", "Tomás Navarro", "Camila Ríos", "Julián Ponce",
)  # fmt: skip
FAILURES = {
    "email": ("550 5.1.1 La casilla no existe", "552 5.2.2 Casilla llena"),
    "sms": ("21211 Número inválido", "30005 Destino desconocido o apagado"),
    "telegram": ("403 Forbidden: bot was blocked by the user",),
    "push": ("410 Gone: la suscripción venció",),
}
SUPPRESSED = (
    "el destinatario pidió la baja del canal",
    "respuesta automática: no se acusa recibo a otra respuesta automática",
    "límite de acuses por remitente y día",
)
OPERATORS = ("ops.marina", "ops.jorge", "ops.silvia")
RESEND_REASONS = ("el cliente dice que no lo recibió", "reenvío tras corregir la dirección")
CHANNELS = (("email", 0.55), ("sms", 0.25), ("telegram", 0.12), ("push", 0.08))
# Templates by (channel, audience), with weights.
TEMPLATES: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {
    ("email", "customer"): (("ack_email", 4), ("status_email", 4), ("reply_email", 3)),
    ("email", "technician"): (("assigned_email", 1),),
    ("email", "watcher"): (("watch_email", 1),),
    ("sms", "customer"): (("ack_sms", 4), ("status_sms", 4), ("reply_sms", 2)),
    ("sms", "technician"): (("assigned_sms", 1),),
    ("telegram", "customer"): (("ack_telegram", 4), ("status_telegram", 3), ("reply_telegram", 3)),
    ("telegram", "technician"): (("assigned_telegram", 1),),
    ("push", "technician"): (("assigned_push", 1),),
}
FAILED_RATE = {"email": 0.025, "sms": 0.06, "telegram": 0.02, "push": 0.04}


@dataclass(frozen=True, slots=True)
class Technician:
    id: int
    name: str
    email: str
    phone: str
    push: str  # the push subscription's endpoint (a technician_channels row)


@dataclass
class Picks:
    """Facts of the generated data that the benchmark's queries are built from."""

    busiest_case: str = ""
    busiest_customer: int = 0
    busiest_technician_email: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return plain.lower().replace(" ", ".")


def weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], [w for _, w in choices])[0]


class Generator:
    """The rows of one dataset, produced chunk by chunk (see the module's docstring)."""

    def __init__(
        self,
        rows: int,
        seed: int,
        end: datetime,
        technicians: list[Technician],
        catalog: dict[str, Any],
    ) -> None:
        self.rows = rows
        self.rng = random.Random(seed)
        self.end = end
        self.start = end - timedelta(days=365)
        self.span = (end - self.start).total_seconds()
        self.technicians = technicians
        self.catalog = catalog
        self.cases = max(1, rows // NOTIFICATIONS_PER_CASE)
        self.customers = max(1, self.cases // CASES_PER_CUSTOMER)
        self.picks = Picks()
        self._case_customer: list[int] = []
        self._case_title: list[str] = []
        self._case_category: list[str] = []
        self._case_tech: list[int] = []
        self._names: list[str] = []

    # --- customers and cases ------------------------------------------------------------

    def customer_rows(self) -> Iterator[list[dict[str, Any]]]:
        rng = self.rng
        chunk: list[dict[str, Any]] = []
        for cid in range(1, self.customers + 1):
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            self._names.append(name)
            at = self.start - timedelta(days=rng.uniform(0, 700))
            chunk.append(
                {"id": cid, "ref": f"bench{cid:026d}", "name": name, "created_at": at,
                 "updated_at": at}
            )  # fmt: skip
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def case_rows(self) -> Iterator[list[dict[str, Any]]]:
        rng, cat = self.rng, self.catalog
        titles = tuple((t, w) for t, w in TITLES)
        chunk: list[dict[str, Any]] = []
        for j in range(self.cases):
            # A few customers write a lot: the customer's index is skewed towards 1.
            customer = 1 + min(self.customers - 1, int(self.customers * rng.random() ** 1.5))
            title = weighted(rng, titles).format(when=rng.choice(WHEN), month=rng.choice(MONTHS))
            category = rng.choices(CATEGORIES, (3, 6, 2))[0]
            tech = rng.randrange(len(self.technicians))
            self._case_customer.append(customer)
            self._case_title.append(title)
            self._case_category.append(category)
            self._case_tech.append(tech)
            opened = self.start + timedelta(seconds=(j + rng.random()) * self.span / self.cases)
            recent = (self.end - opened).days < 14
            status = rng.choice(cat["open_statuses"]) if recent else cat["closed_status"]
            chunk.append(
                {
                    "id": j + 1, "number": f"CAS-{j + 1:06d}", "title": title,
                    "status_id": status, "priority_id": cat["priority"],
                    "severity_id": cat["severity"], "category_id": cat["categories"][category],
                    "area_id": cat["area"], "assignee_id": self.technicians[tech].id,
                    "customer_id": customer, "contact": self.email_of(customer),
                    "origin_channel": rng.choices(("email", "webform", "sms", "telegram"),
                                                  (5, 3, 2, 1))[0],
                    "created_at": opened, "updated_at": opened,
                }
            )  # fmt: skip
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def email_of(self, customer: int) -> str:
        name = self._names[customer - 1]
        return f"{ascii_slug(name)}{customer}@{DOMAINS[customer % len(DOMAINS)]}"

    # --- notifications --------------------------------------------------------------------

    def notification_chunks(self) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """(notifications, their attempts) per chunk, in id (and time) order."""
        rng = self.rng
        per_case = Counter[int]()
        per_customer = Counter[int]()
        per_recipient = Counter[str]()
        statuses = Counter[str]()
        step = self.span / self.rows
        case_step = self.span / self.cases  # seconds between two cases opened
        lag_cases = 3 * 86_400 / case_step  # a case's notifications follow within days
        notes: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        at = self.start
        for nid in range(1, self.rows + 1):
            at = self.start + timedelta(seconds=(nid - rng.random()) * step)
            here = min(self.cases - 1, int((at - self.start).total_seconds() / case_step))
            case = here - int(rng.expovariate(1 / lag_cases))
            if case < 0:  # the first days: any case opened so far
                case = rng.randint(0, here)
            row = self.notification(nid, at, case)
            notes.append(row)
            attempts.extend(self.attempts_of(nid, row))
            per_case[case] += 1
            per_customer[row["customer_id"]] += 1
            if row["audience"] == "technician" and row["channel"] == "email":
                per_recipient[row["recipient"]] += 1
            statuses[row["status"]] += 1
            if len(notes) == CHUNK:
                yield notes, attempts
                notes, attempts = [], []
        if notes:
            yield notes, attempts
        self.picks.busiest_case = f"CAS-{per_case.most_common(1)[0][0] + 1:06d}"
        self.picks.busiest_customer = per_customer.most_common(1)[0][0]
        self.picks.busiest_technician_email = per_recipient.most_common(1)[0][0]
        self.picks.counts = dict(statuses)

    def notification(self, nid: int, at: datetime, case: int) -> dict[str, Any]:
        rng = self.rng
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        if channel == "push":
            audience = "technician"
        else:
            audience = rng.choices(("customer", "technician", "watcher"), (80, 17, 3))[0]
            if audience == "watcher" and channel != "email":
                audience = "customer"
        template = weighted(rng, TEMPLATES[(channel, audience)])
        customer = self._case_customer[case]
        tech = self.technicians[self._case_tech[case]]
        recipient, provider = self.address(channel, audience, customer, tech)
        number = f"CAS-{case + 1:06d}"
        title = self._case_title[case]
        name = self._names[customer - 1]
        text = rng.choice(REPLIES)
        subject, body = render(template, number, title, name, self._case_category[case], text)
        manual = rng.random() < 0.05 and nid > 1
        age = (self.end - at).total_seconds()
        status, reason, tries = self.outcome(channel, age)
        sent_at = at + timedelta(seconds=2 + 40 * (tries - 1) + rng.random() * 3) if (
            status == "sent") else None  # fmt: skip
        headers = {"Auto-Submitted": "auto-replied" if template.startswith("ack_")
                   else "auto-generated"} if channel == "email" and not manual else {}  # fmt: skip
        return {
            "id": nid, "channel": channel, "trigger": "manual" if manual else "auto",
            "template": template, "language": "es", "recipient": recipient,
            "subject": subject, "body": body,
            "html": html_of(number, body) if channel == "email" else None,
            "headers": headers,
            "context": {"case_number": number, "title": title, "customer_name": name,
                        "category": self._case_category[case], "text": text},
            "case_id": case + 1, "customer_id": customer, "audience": audience,
            "technician_id": tech.id if audience == "technician" else None,
            "provider": provider, "fallback": [], "attachments": [], "status": status,
            "status_reason": reason, "attempts": tries, "created_at": at,
            "next_attempt_at": at if status == "pending" else None, "sent_at": sent_at,
            "message_id": f"{nid:024x}@mesa.example.com" if channel == "email" else None,
            "requested_by": rng.choice(OPERATORS) if manual else None,
            "reason": rng.choice(RESEND_REASONS) if manual else None,
            "idempotency_key": f"bench:{nid}" if manual else None,
            "resend_of": max(1, nid - rng.randrange(1, 5_000)) if manual else None,
            "segments": 1 + len(body) // 160 if channel == "sms" else None,
            "last_error": reason if status in ("failed", "dead") else None,
            "provider_id": f"SM{nid:032x}" if status == "sent" and channel == "sms" else None,
        }  # fmt: skip

    def address(
        self, channel: str, audience: str, customer: int, tech: Technician
    ) -> tuple[str, str]:
        rng = self.rng
        if channel == "push":
            return tech.push, rng.choices(("fcm", "webpush", "ntfy"), (6, 3, 1))[0]
        if channel == "email":
            if audience == "watcher":
                return "supervision@mesa.example.com", "email"
            return (tech.email if audience == "technician" else self.email_of(customer)), "email"
        if channel == "sms":
            phone = tech.phone if audience == "technician" else f"+54911{40_000_000 + customer}"
            return phone, rng.choices(("twilio", "vonage"), (65, 35))[0]
        chat = str(700_000_000 + (tech.id if audience == "technician" else customer) * 7)
        return chat, "telegram"

    def outcome(self, channel: str, age_seconds: float) -> tuple[str, str | None, int]:
        """(status, its reason, attempts made)."""
        rng = self.rng
        draw = rng.random()
        if age_seconds < 86_400 and draw < 0.10:  # the last day: some still on their way
            return ("pending", None, 0) if draw < 0.08 else ("sending", None, 1)
        if draw < 0.001:
            return "pending", None, 1  # waiting out a retry's backoff
        draw = rng.random()
        failed = FAILED_RATE[channel]
        if draw < failed:
            return "failed", rng.choice(FAILURES[channel]), rng.randint(1, 3)
        if draw < failed + 0.02:
            return "dead", "sin respuesta del proveedor tras 3 intentos", 3
        if draw < failed + 0.06:
            return "suppressed", rng.choice(SUPPRESSED), 0
        tries = rng.choices((1, 2, 3), (85, 12, 3))[0]
        return "sent", None, tries

    def attempts_of(self, nid: int, row: dict[str, Any]) -> list[dict[str, Any]]:
        rng = self.rng
        tries = row["attempts"]
        out = []
        for n in range(tries):
            last = n == tries - 1
            status = row["status"]
            if last and status == "sent":
                outcome, error = "sent", None
            elif last and status == "failed":
                outcome, error = "permanent", row["status_reason"]
            else:
                outcome, error = "transient", "tiempo de espera agotado"
            ms = rng.randint(40, 900)
            out.append(
                {
                    "notification_id": nid,
                    "started_at": row["created_at"] + timedelta(seconds=1 + 40 * n),
                    "duration_ms": ms, "outcome": outcome,
                    "provider_response": "250 2.0.0 OK" if outcome == "sent" else error,
                    "error": error, "provider": row["provider"],
                    "provider_code": "250" if outcome == "sent" else None,
                    "provider_message_id": row["provider_id"] if outcome == "sent" else None,
                    "possible_duplicate": False, "dispatcher": "mesa1:4242:dispatch",
                }
            )  # fmt: skip
        return out


def render(
    template: str, number: str, title: str, name: str, category: str, text: str
) -> tuple[str, str]:
    """(subject, body) as the shipped Spanish templates render them (shortened)."""
    kind, channel = template.split("_", 1)
    if kind == "ack":
        if channel == "sms":
            return "", (
                f"Recibimos su consulta. Su caso es {number}: {title[:40]}. Le responderemos "
                "a la brevedad."
            )
        return f"[{number}] Recibimos su consulta: {title}", (
            f"Hola {name}:\n\nRecibimos su mensaje y abrimos el caso {number} ({category}).\n\n"
            f"Asunto: {title}\n\nUn integrante de nuestro equipo le responderá a la brevedad. "
            f"Si quiere agregar algo, responda a este mensaje o mencione {number}: todo "
            "quedará registrado en el mismo caso.\n\n-- \nMesa de ayuda"
        )
    if kind == "status":
        status = STATUS_NAMES[len(title) % len(STATUS_NAMES)]
        if channel == "sms":
            return "", f"Su caso {number} está ahora «{status}»: {title[:30]}."
        return f"[{number}] Su caso está ahora «{status}»: {title}", (
            f"Hola {name}:\n\nEl caso {number} pasó a «{status}».\n\nAsunto: {title}\n\n"
            f"Si quiere agregar algo, responda a este mensaje conservando {number} en el "
            "asunto.\n\n-- \nMesa de ayuda"
        )
    if kind == "reply":
        if channel == "sms":
            return "", f"Caso {number}: {text[:106]}"
        return f"Re: [{number}] {title}", (
            f"{text}\n\n-- \nMesa de ayuda · caso {number}\nPara responder, conteste este "
            f"mensaje conservando [{number}] en el asunto."
        )
    if kind == "watch":
        return f"[{number}] Nota nueva: {title}", (
            f"Se agregó una nota interna al caso {number} ({title}):\n\n{text}"
        )
    if channel in ("sms", "push"):
        return f"Caso asignado {number}", f"Caso {number} asignado: {title[:45]}. Cliente: {name}"
    return f"[{number}] Caso asignado: {title}", (
        f"Se le asignó el caso {number}.\n\nTítulo: {title}\nCliente: {name}\nCategoría: "
        f"{category}\n\n-- \nMesa de ayuda"
    )


def html_of(number: str, body: str) -> str:
    """The email's HTML part, the shape and size of ``_email.html.j2`` around the text."""
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    return (
        '<!DOCTYPE html><html lang="es"><head><meta charset="utf-8"><title>Caso '
        f'{number}</title></head><body style="margin:0;padding:0;background:#f4f5f7;">'
        '<div style="max-width:600px;margin:0 auto;padding:24px 16px;font-family:Arial,'
        'Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1f2933;"><p style="margin:'
        f'0 0 16px;font-size:13px;color:#52606d;">Caso <strong>{number}</strong></p>'
        f"{paragraphs}</div></body></html>"
    )
