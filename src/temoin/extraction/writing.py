"""Writing the package: each segment decrypted record by record from the vault, hashed and written into the zip
as it goes (trimmed or redacted when asked), then the manifest, SHA256SUMS, its signature and timestamp,
the custody PDF and the README."""

from __future__ import annotations

import hashlib
import io
import queue
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from temoin.evidence import crypto
from temoin.evidence.timestamp import Stamp
from temoin.extraction import custody
from temoin.extraction.models import MediaKind
from temoin.extraction.plan import (
    ExtractionConflict,
    ExtractionFault,
    ExtractionInvalid,
    Plan,
    SealedReader,
    _Recording,
    _redactor,
    _Segment,
)
from temoin.extraction.trim import TrimError, TrimSource, trim
from temoin.journal.entry import Action
from temoin.keyring import Signer
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext

SCHEMA = "temoin.extraction/1"
SUMS, SIGNATURE, MANIFEST, CUSTODY_PDF, KEY_FILE, KEYS_FILE, README = (
    "SHA256SUMS",
    "SHA256SUMS.sig",
    "manifest.json",
    "chain-of-custody.pdf",
    "platform-public-key.pem",
    "platform-keys.json",
    "README.txt",
)
TIMESTAMP = "SHA256SUMS.tsr"  # RFC 3161 token over SHA256SUMS, when a TSA is configured (docs/timestamping.md)
LOST_NOTE = (
    "Some segments were lost at the camera (damaged there before hand-over): each recording's lost_segments "
    "lists them with their time ranges, as the vault's signed receipt declares them; they are not in this "
    "package and the others are intact. / Des segments ont été perdus à la caméra (endommagés avant le "
    "transfert) : lost_segments les liste avec leurs plages horaires, comme le déclare le reçu signé du "
    "coffre ; ils ne sont pas dans ce paquet, les autres sont intacts."
)
_COPY = 1024 * 1024


class KeyRotatedDuringBuild(ExtractionConflict):
    """The platform key was rotated while the package was being built; asking again makes it under the new key."""


# --- writing the package -----------------------------------------------------------------------------


class _Lane:
    """One worker thread doing queued work in order. SHA-256, CRC-32 and file writes release the GIL, so two
    lanes (the files' hashes; the zip's hash and write) run beside the read and decryption on the caller's
    thread: the two SHA-256 passes, most of the work per byte, run on two cores at once."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[tuple[Callable[[Any], Any], Any, Callable[[], None] | None] | None] = queue.Queue(
            maxsize=8
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, arg, after = item
            try:
                if self.error is None or fn is _release:
                    fn(arg)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller at its next call
                self.error = exc
            finally:
                if after is not None:  # a lent buffer goes back even after an error: the caller may wait on it
                    after()

    def submit(self, fn: Callable[[Any], Any], arg: Any, after: Callable[[], None] | None = None) -> None:
        if self.error is not None:
            if after is not None:
                after()
            raise self.error
        self._queue.put((fn, arg, after))

    def drain(self) -> None:
        if not self._thread.is_alive():  # closed (e.g. the sink's flush at garbage collection)
            return
        done = threading.Event()
        self._queue.put((_release, done, None))
        done.wait()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _release(event: threading.Event) -> None:
    event.set()


class _Pool:
    """Plaintext buffers reused record after record: no MiB allocated, faulted in and freed per record. Taking
    one waits until one is back, which bounds the records in flight (and the memory) to the pool's size."""

    def __init__(self, count: int) -> None:
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(count):
            self._free.put(bytearray(crypto.RECORD_BYTES))

    def take(self) -> bytearray:
        return self._free.get()

    def give(self, buf: bytearray) -> None:
        self._free.put(buf)


class _Loan:
    """One pooled buffer read by several lanes at once: it goes back to the pool when the last is done."""

    __slots__ = ("_buf", "_lock", "_pool", "_users")

    def __init__(self, pool: _Pool, buf: bytearray, users: int) -> None:
        self._pool, self._buf, self._users, self._lock = pool, buf, users, threading.Lock()

    def done(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self._pool.give(self._buf)


class _HashingSink(io.RawIOBase):
    """The zip's output: hashes every byte on its way to the sealed blob (in its lane). Not seekable, so zipfile
    writes each entry once (sizes in data descriptors) and the zip's SHA-256 needs no second read."""

    def __init__(self, fh: artefact_blobs.SealedWriter, lane: _Lane) -> None:
        super().__init__()
        self.fh, self.lane, self.sha256, self.size = fh, lane, hashlib.sha256(), 0
        self._lent: Callable[[], None] | None = None

    def lend(self, done: Callable[[], None]) -> None:
        """The next write is a view of a pooled buffer: queued as is (no copy); `done` hands it back."""
        self._lent = done

    def writable(self) -> bool:
        return True

    def _write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.fh.write(data)  # sealed record by record (the writer copies what it keeps)

    def write(self, data: Any) -> int:
        done, self._lent = self._lent, None
        if done is None and not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse its buffer once we return
        self.lane.submit(self._write, data, done)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")

    def flush(self) -> None:
        self.lane.drain()


@dataclass
class Built:
    name: str  # the package's name (vault.artefact_blobs): sealed in the blob store under it
    wrapped_key: bytes  # its data key, wrapped by the master key
    sha256: str  # of the plaintext zip, as its recipient gets it
    size: int
    sums_sha256: str
    manifest: dict[str, Any]
    timestamp: Stamp | None = None  # None: no TSA configured


Progress = Callable[[int, int], None]


class _Writer:
    """Entries of the zip. Each file's SHA-256 is computed in the hash lane; `digests()` waits for them."""

    def __init__(self, zf: zipfile.ZipFile, sink: _HashingSink, root: str, when: datetime, lane: _Lane) -> None:
        self.zf, self.sink, self.root, self.lane = zf, sink, root, lane
        self.pool = _Pool(8)
        self.hashers: dict[str, Any] = {}
        self.date_time = when.timetuple()[:6]

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(self.root + name, self.date_time)
        info.compress_type = zipfile.ZIP_STORED  # media are compressed already; a stored zip is a plain copy
        info.external_attr = 0o644 << 16
        return info

    def stream(self, name: str, chunks: Iterator[bytes], tick: Callable[[int], None] | None = None) -> int:
        hasher, size = hashlib.sha256(), 0
        self.hashers[name] = hasher
        with self.zf.open(self._info(name), "w", force_zip64=True) as out:
            for chunk in chunks:
                self.lane.submit(hasher.update, chunk)
                out.write(chunk)
                size += len(chunk)
                if tick:
                    tick(len(chunk))
        return size

    def sealed(self, name: str, fh: BinaryIO, data_key: bytes, tick: Callable[[int], None]) -> int:
        """A vault blob's plaintext as one entry: each record decrypted into a pooled buffer, its CRC-32 taken
        here by zipfile, its SHA-256 in the hash lane and its bytes hashed into the zip's SHA-256 and written
        in the sink's lane, from the same buffer (no copy), which goes back to the pool once both are done."""
        hasher, size = hashlib.sha256(), 0
        self.hashers[name] = hasher
        with self.zf.open(self._info(name), "w", force_zip64=True) as out:
            for view in crypto.open_records_into(fh, data_key, self.pool.take):
                loan = _Loan(self.pool, view.obj, 2)  # type: ignore[arg-type]  # view.obj is the pooled bytearray
                self.lane.submit(hasher.update, view, loan.done)
                self.sink.lend(loan.done)
                out.write(view)
                size += len(view)
                tick(len(view))
        return size

    def file(self, name: str, path: Path) -> int:
        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(_COPY):
                    yield chunk

        return self.stream(name, chunks())

    def small(self, name: str, data: bytes, *, signed: bool = True) -> None:
        self.zf.writestr(self._info(name), data)
        if signed:
            self.hashers[name] = hashlib.sha256(data)

    def digests(self) -> dict[str, str]:
        self.lane.drain()
        return {name: h.hexdigest() for name, h in self.hashers.items()}


def _records(p: VaultContext, seg: _Segment, data_key: bytes) -> Iterator[bytes]:
    with p.store.open(seg.key) as fh:
        yield from crypto.open_records(fh, data_key)


def _sealed_opener(p: VaultContext, seg: _Segment, data_key: bytes) -> Callable[[], BinaryIO]:
    """How the trimmer reads one segment's plaintext, opened only when it needs it."""
    return lambda: io.BufferedReader(SealedReader(p.store.open(seg.key), data_key, seg.size), _COPY)


def _decrypt_to(p: VaultContext, seg: _Segment, data_key: bytes, dst: Path) -> None:
    hasher = hashlib.sha256()
    with dst.open("wb") as out:
        for chunk in _records(p, seg, data_key):
            hasher.update(chunk)
            out.write(chunk)
    _check(seg, hasher.hexdigest())


def _check(seg: _Segment, digest: str) -> None:
    if digest != seg.sha256:
        raise ExtractionFault(
            f"segment {seg.index} read from the vault hashes to {digest}, not the "
            f"device-signed {seg.sha256}: the vault's copy is damaged; run "
            "`temoin vault scrub`. No package was made."
        )


def _jsonable(report: Any) -> Any:
    for attr in ("model_dump", "_asdict"):
        if hasattr(report, attr):
            return orjson.loads(orjson.dumps(getattr(report, attr)(), default=str))
    if hasattr(report, "__dataclass_fields__"):
        import dataclasses

        return orjson.loads(orjson.dumps(dataclasses.asdict(report), default=str))
    return str(report)


def package_name(tenant_slug: str, extraction_id: str) -> str:
    """The package's name in the blob store (vault.artefact_blobs), and its path under TEMOIN_HOME before."""
    return f"extractions/{tenant_slug}/{extraction_id}.zip"


PACKAGE_FILE = "package.zip.sealed"


def key_context(extraction_id: str) -> str:
    """What a package's wrapped data key is bound to: moved to another extraction, it does not open."""
    return f"extraction-package-{extraction_id}"


def build(p: VaultContext, plan: Plan, progress: Progress | None = None) -> Built:
    """Write the package's zip sealed into the blob store (staged, then promoted whole), under a data key of its
    own wrapped by the master key: the store never sees the plaintext, any node can serve it."""
    folder = p.settings.home / "extractions" / plan.tenant_slug
    name = package_name(plan.tenant_slug, plan.extraction_id)
    work = folder / f".build-{plan.extraction_id}"  # trimmed / redacted intermediates, removed below
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap_key(p.keyring.master_key, data_key, key_context(plan.extraction_id))
    total, done = plan.total_bytes, 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(done, total), total)

    hash_lane, sink_lane = _Lane("extraction-hash"), _Lane("extraction-write")
    raw = artefact_blobs.SealedWriter(p.store, artefact_blobs.key(name, PACKAGE_FILE), data_key, hashed=False)
    try:
        sink = _HashingSink(raw, sink_lane)
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            writer = _Writer(zf, sink, f"temoin-extraction-{plan.extraction_id}/", plan.created_at, hash_lane)
            sections = [_write_media(p, plan, rec, writer, work, tick) for rec in plan.recordings]
            digests = writer.digests()
            for rec, section in zip(plan.recordings, sections):
                stored = {s.index: s for s in rec.segments}
                for media in section["media"]:
                    media["sha256"] = digests[media["file"]]
                    if media["kind"] == MediaKind.ORIGINAL:
                        _check(stored[media["segment"]], media["sha256"])
            # One key, taken at once, is named, published and signs: a rotation waits for the signature.
            with p.keyring.signing() as signer:
                _check_key(signer, plan)
                manifest = _manifest(signer, plan, sections)
                writer.small(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
                this = custody.CustodyEntry(
                    seq=0,
                    at=plan.created_at,
                    action=Action.COMMUNICATION.value,
                    event="extraction.created",
                    actor=plan.actor.model_dump(),
                    recordings=[r.row["id"] for r in plan.recordings],
                    motive=None,
                    recipients=[plan.request.recipient_name],
                    details=_details(plan, None),
                    hash=None,
                )
                writer.small(
                    CUSTODY_PDF,
                    custody.render_pdf(
                        extraction=manifest,
                        recordings=manifest["recordings"],
                        entries=plan.entries,
                        this_extraction=this,
                    ),
                )
                writer.small(KEY_FILE, signer.public_key_pem())
                # The platform's key history, vouched for by this package's signature: receipts signed by a
                # key since retired verify with it once the signing key is pinned.
                writer.small(KEYS_FILE, orjson.dumps(signer.trusted.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
                writer.small(
                    README,
                    readme(plan.extraction_id, plan.media_kind, lost=any(r.lost for r in plan.recordings)).encode(),
                )
                sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(writer.digests().items())).encode()
                writer.small(SUMS, sums, signed=False)
                writer.small(SIGNATURE, signer.key.sign(sums), signed=False)
            stamp = _timestamp(p, plan, writer, sums)
        sink_lane.drain()
        raw.close()  # promoted: readable whole by every node
        tick(0)
        return Built(
            name, wrapped, sink.sha256.hexdigest(), sink.size, hashlib.sha256(sums).hexdigest(), manifest, stamp
        )
    except BaseException:
        raw.abort()
        raise
    finally:
        hash_lane.close()
        sink_lane.close()
        shutil.rmtree(work, ignore_errors=True)


def _timestamp(p: VaultContext, plan: Plan, writer: _Writer, sums: bytes) -> Stamp | None:
    """SHA256SUMS.tsr beside the signature. A TSA failure leaves the package without it, not unmade: the
    evidence must reach its recipient; the failure is logged and journaled with the extraction."""
    if p.timestamper is None:
        return None
    stamp = p.timestamper.stamp(sums, what=f"extraction {plan.extraction_id}")
    if stamp.token is not None:
        writer.small(TIMESTAMP, stamp.token, signed=False)
    return stamp


def _write_media(
    p: VaultContext, plan: Plan, rec: _Recording, writer: _Writer, work: Path, tick: Callable[[int], None]
) -> dict[str, Any]:
    rid = rec.row["id"]
    section: dict[str, Any] = {"media": [], "trim": None, "redaction": None}
    trimming = plan.request.trim if plan.request.trim and plan.request.trim.recording_id == rid else None
    redact = _redactor() if plan.request.training else None
    if not trimming and not redact:
        for seg in rec.segments:
            name = f"media/{rid}/{seg.index:05d}.mp4"
            with p.store.open(seg.key) as fh:
                size = writer.sealed(name, fh, rec.data_key, tick)  # checked once hashed, in build()
            section["media"].append(
                {"file": name, "sha256": None, "size": size, "kind": MediaKind.ORIGINAL.value, "segment": seg.index}
            )
        return section
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    sources: list[tuple[Path, list[dict[str, Any]]]] = []
    if trimming:
        trim_sources = [
            TrimSource(
                s.index,
                (s.started_at - rec.started_at).total_seconds(),
                s.duration_s,
                s.sha256,
                _sealed_opener(p, s, rec.data_key),
            )
            for s in rec.segments
        ]
        out = work / f"{rid}-trimmed.mp4"
        try:
            result = trim(trim_sources, trimming.start_s, trimming.end_s, out)
        except TrimError as exc:
            raise ExtractionInvalid(f"cannot trim {rid}: {exc}") from None
        section["trim"] = result.as_manifest()
        if lost := rec.lost_within(result.kept_start_s, trimming.end_s):
            section["trim"]["lost_segments"] = lost  # a gap in the trimmed file: nothing was there to copy
        tick(sum(s.size for s in rec.segments))
        sources.append((out, [{"index": s.index, "sha256": s.sha256} for s in result.segments]))
    else:
        for seg in rec.segments:
            out = work / f"{rid}-{seg.index:05d}.mp4"
            _decrypt_to(p, seg, rec.data_key, out)
            tick(seg.size)
            sources.append((out, [{"index": seg.index, "sha256": seg.sha256}]))
    reports = []
    for _n, (path, derived_from) in enumerate(sources):
        kind = MediaKind.TRIMMED
        if redact:
            redacted = path.with_name(path.stem + "-redacted.mp4")
            try:
                reports.append(_jsonable(redact(path, redacted)))
            except Exception as exc:  # noqa: BLE001 - the engine's own errors say what failed
                raise ExtractionFault(
                    f"anonymising {rid} failed ({type(exc).__name__}: {exc}); no training package was made"
                ) from None
            path.unlink()
            path, kind = redacted, MediaKind.REDACTED
        suffix = "trimmed" if trimming else f"{derived_from[0]['index']:05d}"
        name = f"media/{rid}/{suffix}{'-redacted' if redact else ''}.mp4"
        size = writer.file(name, path)
        path.unlink()
        section["media"].append(
            {"file": name, "sha256": None, "size": size, "kind": kind.value, "derived_from": derived_from}
        )
    if redact:
        section["redaction"] = {
            "engine": "temoin.rights.redaction.redact_file",
            "mode": "blur",
            "voice": True,
            "reason": "training copy: faces and voices anonymised (R241-13)",
            "reports": reports,
        }
    return section


def _details(plan: Plan, built: Built | None) -> dict[str, Any]:
    r = plan.request
    details: dict[str, Any] = {
        "extraction_id": plan.extraction_id,
        "procedure_type": r.procedure_type.value,
        "recipient_kind": r.recipient_kind.value,
        "reference": r.reference,
        "trimmed": r.trim is not None,
        "media_kind": plan.media_kind.value,
    }
    if r.trim:
        details["trim"] = {"recording_id": r.trim.recording_id, "start_s": r.trim.start_s, "end_s": r.trim.end_s}
    if built:
        details.update(package_sha256=built.sha256, package_bytes=built.size, sums_sha256=built.sums_sha256)
        if built.timestamp is not None:
            details["timestamp"] = built.timestamp.as_dict()
    return details


def _notes(kind: MediaKind) -> list[str]:
    if kind == MediaKind.ORIGINAL:
        return [
            "media/ holds the original segments exactly as the camera produced them: their SHA-256 are the "
            "device-signed ones in each recording's manifest. / media/ contient les segments originaux, "
            "octet pour octet, tels que la caméra les a produits."
        ]
    if kind == MediaKind.TRIMMED:
        return [
            "A recording was trimmed by stream copy (no re-encoding): its original bytes are NOT in this "
            "package; the trimmed file derives from the segments whose device-signed hashes are listed "
            "under trim.source_segments. / Un enregistrement a été découpé par copie de flux, sans "
            "ré-encodage : ses octets originaux ne sont pas dans ce paquet."
        ]
    return [
        "Training copy: faces and voices anonymised (R241-13). The original bytes are NOT in this package; "
        "each file names the device-signed segments it derives from. / Copie de formation anonymisée "
        "(visages et voix, R241-13) : les originaux ne sont pas dans ce paquet."
    ]


def _check_key(signer: Signer, plan: Plan) -> None:
    """The package says it was made at plan.created_at: a key made after that (a rotation during the build) cannot
    vouch for it, and the key before is gone."""
    if signer.since is not None and signer.since > plan.created_at:
        raise KeyRotatedDuringBuild(
            f"the platform signing key was rotated at {signer.since.isoformat()}, while package "
            f"{plan.extraction_id} (made at {plan.created_at.isoformat()}) was being built: the new key cannot sign "
            "a package dated before it; ask for the extraction again"
        )


def _manifest(signer: Signer, plan: Plan, sections: list[dict[str, Any]]) -> dict[str, Any]:
    r = plan.request
    pem = signer.public_key_pem()
    return {
        "schema": SCHEMA,
        "extraction_id": plan.extraction_id,
        "tenant": {"slug": plan.tenant_slug, "name": plan.tenant_name},
        "created_at": plan.created_at.isoformat(),
        "extracted_by": plan.actor.model_dump(),
        "recipient": {"name": r.recipient_name, "kind": r.recipient_kind.value},
        "procedure": {"type": r.procedure_type.value, "reference": r.reference},
        "platform_key": {
            "file": KEY_FILE,
            "id": signer.key_id,
            "sha256_fingerprint": signer.fingerprint,
            "pem_sha256": hashlib.sha256(pem).hexdigest(),
            "history_file": KEYS_FILE,
        },
        "media_kind": plan.media_kind.value,
        "notes": _notes(plan.media_kind) + ([LOST_NOTE] if any(rec.lost for rec in plan.recordings) else []),
        "recordings": [{**rec.row, **section} for rec, section in zip(plan.recordings, sections)],
        "custody": {
            "journal_chain": plan.tenant_slug,
            "entries": [e.as_dict() for e in plan.entries],
            "this_extraction": "journaled as event extraction.created with this extraction_id once the package "
            "was written; its entry carries the zip's SHA-256",
        },
    }


def readme(extraction_id: str, kind: MediaKind, lost: bool = False) -> str:
    original = kind == MediaKind.ORIGINAL
    fr_media = (
        "media/ contient les segments originaux, octet pour octet."
        if original
        else "Attention : les octets originaux ne sont PAS dans ce paquet (copie "
        + ("découpée par copie de flux" if kind == MediaKind.TRIMMED else "anonymisée pour la formation")
        + ") ; manifest.json indique de quels segments signés chaque fichier dérive."
    )
    en_media = (
        "media/ holds the original segments, byte for byte."
        if original
        else "Note: the original bytes are NOT in this package (a "
        + ("stream-copy trim" if kind == MediaKind.TRIMMED else "training copy, anonymised")
        + "); manifest.json names the device-signed segments each file derives from."
    )
    if lost:
        fr_media += (
            " Des segments ont été perdus à la caméra avant le transfert : manifest.json les liste "
            "(lost_segments, avec leurs horaires), comme le déclare le reçu signé du coffre."
        )
        en_media += (
            " Some segments were lost at the camera before hand-over: manifest.json lists them "
            "(lost_segments, with their times), as the vault's signed receipt declares them."
        )
    check = (
        "  sha256sum -c SHA256SUMS\n"
        "  openssl pkeyutl -verify -pubin -inkey platform-public-key.pem -rawin -in SHA256SUMS "
        "-sigfile SHA256SUMS.sig\n"
        "  temoin verify . --key <clé publique de la plateforme obtenue par ailleurs / platform key obtained "
        "independently>\n"
        "  temoin verify . --fingerprint <empreinte SHA-256 publiée / published SHA-256 fingerprint>\n"
    )
    return f"""Témoin — paquet d'extraction / extraction package {extraction_id}

FRANÇAIS
Ce dossier contient des enregistrements de caméras individuelles remis pour une procédure.
- manifest.json : destinataire, procédure, auteur de l'extraction, métadonnées de chaque enregistrement
  (horaires, agent, caméra, déclenchement, trace GPS), manifeste signé par la caméra et sa clé publique,
  reçu signé du coffre, empreintes et chaîne des segments, découpage éventuel.
- chain-of-custody.pdf : chaîne de possession (collecte, consultations et motifs, gels, extractions).
- SHA256SUMS : empreinte SHA-256 de chaque autre fichier ; SHA256SUMS.sig : signature Ed25519 de
  SHA256SUMS par la clé de la plateforme (platform-public-key.pem).
- SHA256SUMS.tsr (si présent) : horodatage RFC 3161 de SHA256SUMS par une autorité d'horodatage ;
  openssl ts -verify -data SHA256SUMS -in SHA256SUMS.tsr -CAfile <certificats de l'autorité>
{fr_media}
Vérifier, dans ce dossier (sans réseau) :
{check}La clé incluse prouve seulement la cohérence du paquet : temoin verify ne déclare le paquet intact que
si la clé qui l'a signé est épinglée (--key, --fingerprint, ou un magasin de clés de confiance), obtenue
auprès du service lui-même (https://<service>/.well-known/temoin/keys.pem), pas de ce paquet.
Chaque clé de caméra est certifiée par la clé de la plateforme (manifest.json, device.certificate) ;
platform-keys.json donne l'historique des clés de la plateforme, avec leurs périodes de validité.

ENGLISH
This folder holds body-worn camera recordings handed over for a procedure.
- manifest.json: recipient, procedure, who extracted, each recording's metadata (times, agent, camera,
  trigger, GPS track), the device-signed manifest and the device public key, the vault's signed receipt,
  segment hashes and chain, trimming if any.
- chain-of-custody.pdf: the chain of custody (collection, consultations with motives, holds, extractions).
- SHA256SUMS: SHA-256 of every other file; SHA256SUMS.sig: Ed25519 signature of SHA256SUMS by the
  platform key (platform-public-key.pem).
- SHA256SUMS.tsr (if present): RFC 3161 timestamp of SHA256SUMS by a timestamp authority;
  openssl ts -verify -data SHA256SUMS -in SHA256SUMS.tsr -CAfile <the authority's CA certificates>
{en_media}
To check, in this folder (offline):
{check}The included key only proves the package is consistent: temoin verify reports the package intact only
when the key that signed it is pinned (--key, --fingerprint, or a trust store), obtained from the service
itself (https://<service>/.well-known/temoin/keys.pem), not from this package.
Each camera key is certified by the platform key (manifest.json, device.certificate); platform-keys.json
gives the history of the platform's keys with their validity periods.
"""
