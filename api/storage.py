"""Where customers' attachments (photos, signatures) are kept: the ``Storage`` protocol, a local
directory (the default) and an S3-compatible bucket (boto3: AWS S3, MinIO, Ceph, OSS's S3 API…).

Whatever the backend, what is stored is checked first (``checked``): at most
``max_bytes`` (5 MB by default), and a JPEG, PNG or WebP **by its magic bytes** — the type a
client declares must agree with them, and the stored type is the sniffed one. Names are never
the client's: a key is ``<prefix><SHA-256 of the content>.<ext>`` (the prefix is the caller's,
e.g. ``tickets/<id>/``), so no filename, path or extension a client sends ever reaches a disk or
a bucket, and storing the same file twice is one file.

Configuration (``TICKETFLOW_ATTACHMENTS_*`` and ``TICKETFLOW_S3_*``, ``Settings``)
is read here until it joins ``models/settings.py``.
"""

import asyncio
import base64
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from api.errors import PayloadTooLarge, UnsupportedMediaType
from models.settings import Settings

MAX_BYTES = 5 * 1024 * 1024
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
TYPES = {ext: media for media, ext in EXTENSIONS.items()}
# A key: path segments of safe characters (no "..", no leading "/"), ending in a known extension.
KEY = re.compile(r"(?:[A-Za-z0-9_-]{1,64}/){0,4}[A-Za-z0-9_-]{16,64}\.(?:jpg|png|webp)")


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str


class Storage(Protocol):
    """An attachment store. ``put`` returns the new file's key; ``get`` a file by key (None when
    there is none); ``url`` an address a reader may fetch it from directly, or None when only the
    app serves it (the local directory)."""

    max_bytes: int

    async def put(self, data: bytes, content_type: str, *, prefix: str = "") -> str: ...

    async def get(self, key: str) -> StoredFile | None: ...

    def url(self, key: str) -> str | None: ...


def sniff(data: bytes) -> str | None:
    """The image type the bytes are, by their signature: JPEG, PNG or WebP, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def checked(data: bytes, declared: str | None, max_bytes: int) -> str:
    """The content type to store ``data`` under, or a 413 (too large) / 415 (not an allowed image,
    or not the image it claims to be)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes")
    if not data:
        raise UnsupportedMediaType("the file is empty")
    found = sniff(data)
    if found is None:
        raise UnsupportedMediaType("only JPEG, PNG and WebP images are accepted")
    media = (declared or "").split(";")[0].strip().lower()
    if media and media not in ("application/octet-stream", found):
        raise UnsupportedMediaType(f"the file is a {found} image, not {media}")
    return found


def new_key(prefix: str, data: bytes, content_type: str) -> str:
    """``<prefix><the content's SHA-256, base64url>.<ext>``: the same file stored again under the
    same prefix is the same key (a repeated upload changes nothing)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    key = f"{prefix}{digest}.{EXTENSIONS[content_type]}"
    if not KEY.fullmatch(key):
        raise ValueError(f"bad attachment key prefix {prefix!r}")
    return key


def valid_key(key: str) -> bool:
    return KEY.fullmatch(key) is not None


def type_of(key: str) -> str:
    return TYPES[key.rsplit(".", 1)[1]]


class LocalStorage:
    """Files under one directory, written whole (a temporary file renamed into place), owner-only."""

    def __init__(self, root: Path, max_bytes: int = MAX_BYTES) -> None:
        self.root, self.max_bytes = root, max_bytes

    def _path(self, key: str) -> Path:
        if not valid_key(key):
            raise ValueError(f"bad attachment key {key!r}")
        return self.root / key

    async def put(self, data: bytes, content_type: str, *, prefix: str = "") -> str:
        key = new_key(prefix, data, checked(data, content_type, self.max_bytes))
        await asyncio.to_thread(self._write, self._path(key), data)
        return key

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> StoredFile | None:
        if not valid_key(key):
            return None
        try:
            data = await asyncio.to_thread(self._path(key).read_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return StoredFile(data=data, content_type=type_of(key))

    def url(self, key: str) -> str | None:
        return None  # served by the app only


class S3Storage:
    """Objects in one bucket of an S3-compatible store, through boto3 (its calls run in a thread:
    boto3 is synchronous). ``url`` is a presigned GET, valid ``url_ttl_s`` seconds."""

    def __init__(self, client: Any, bucket: str, max_bytes: int = MAX_BYTES, url_ttl_s: int = 300) -> None:
        self.client, self.bucket, self.max_bytes, self.url_ttl_s = client, bucket, max_bytes, url_ttl_s

    @classmethod
    def from_settings(cls, s: Settings) -> "S3Storage":
        import boto3  # only where S3 is configured
        from botocore.config import Config

        if not s.s3_bucket:
            raise ValueError("TICKETFLOW_S3_BUCKET is required with TICKETFLOW_ATTACHMENTS_BACKEND=s3")
        client = boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key_id,
            aws_secret_access_key=s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}),
        )
        return cls(client, s.s3_bucket, s.attachment_max_bytes, s.s3_url_ttl_s)

    async def put(self, data: bytes, content_type: str, *, prefix: str = "") -> str:
        media = checked(data, content_type, self.max_bytes)
        key = new_key(prefix, data, media)
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=media)
        return key

    async def get(self, key: str) -> StoredFile | None:
        if not valid_key(key):
            return None
        try:
            answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        data = await asyncio.to_thread(answer["Body"].read)
        return StoredFile(data=data, content_type=type_of(key))  # the type the key was stored as

    def url(self, key: str) -> str | None:
        if not valid_key(key):
            return None
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_ttl_s
            )
        )


def from_settings(s: Settings) -> Storage:
    """The storage the configuration names."""
    if s.attachments_backend == "s3":
        return S3Storage.from_settings(s)
    root = Path(s.attachments_dir) if s.attachments_dir else Path(s.data_dir) / "attachments"
    return LocalStorage(root, s.attachment_max_bytes)
