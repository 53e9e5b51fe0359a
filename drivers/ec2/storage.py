"""S3: buckets and blobs. Uploads stream: a blob up to the multipart threshold goes in one
PutObject; a larger one in parts of ``multipart_part_size`` (larger when an announced
length needs more than S3's 10,000 parts), at most
``multipart_concurrency`` of them in flight per upload, and at most ``multipart_memory``
bytes of parts in flight for all uploads of the process together. Downloads stream the
object's body in chunks."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from deltacloud.drivers import (
    COLLECTIONS,
    CallContext,
    ConflictError,
    Filters,
    NotFoundError,
    ValidationError,
    filter_on,
)
from deltacloud.drivers import models as m

from . import names
from .errors import (
    AUTH_CODES,
    PERMISSION_CODES,
    http_status,
    translate,
    translated,
    translated_iter,
)
from .session import EC2Base

DOWNLOAD_CHUNK = 1024 * 1024
#: What a region's name looks like (us-east-1; an S3-compatible store's own names too).
_REGION_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MIB = 1024 * 1024
#: S3's limits: parts of one multipart upload, bytes of one part, bytes of one object.
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024**3
MAX_OBJECT_SIZE = 5 * 1024**4
#: An upload waiting for room in the budget gives up this long before its deadline, so
#: that its client hears UPLOADS_BUSY rather than a bare DEADLINE_EXCEEDED.
ANSWER_MARGIN = 0.2
#: Looks at a blob whose metadata is updated, when it keeps being replaced meanwhile.
METADATA_ATTEMPTS = 3
#: What S3 calls an object stored without a content type.
S3_DEFAULT_CONTENT_TYPE = "binary/octet-stream"
#: What a refused HEAD request's answer (no body, so no error code) says instead.
_BODILESS_CODES = frozenset({"", "400", "403", "BadRequest", "Forbidden"})


@contextlib.contextmanager
def _blob_translated(bucket_id: str, blob_id: str) -> Iterator[None]:
    """translated() for a call on a blob: a missing bucket (NoSuchBucket) is named."""
    try:
        with translated("blob", blob_id):
            yield
    except NotFoundError as error:
        if error.resource_type != "bucket":
            raise
        code = error.metadata.get("backend_code", "")
        raise NotFoundError("bucket", bucket_id, backend_code=code) from None


def _learn_why(s3: Any, bucket_id: str) -> None:
    """A HEAD request refused with a bare 403 or 400 (its answer has no body, so no error
    code): wrong credentials or a real denial? One ListObjectsV2 of at most one key on the
    same bucket (the permission HeadBucket needs) answers with the code. Raises the SDK error
    of that code when it is about the credentials or permissions; returns otherwise."""
    try:
        s3.list_objects_v2(Bucket=bucket_id, MaxKeys=1)
    except ClientError as probe:
        code = str((probe.response.get("Error") or {}).get("Code") or "")
        if code in AUTH_CODES or code in PERMISSION_CODES:
            raise translate(probe, "bucket", bucket_id) from None
    except (BotoCoreError, OSError):
        pass


def _head(
    s3: Any, bucket_id: str, operation: str, resource_type: str, resource_id: str, **params: Any
) -> dict[str, Any]:
    """A HeadBucket or HeadObject, its bodiless refusals told apart (:func:`_learn_why`)."""
    with translated(resource_type, resource_id):
        try:
            return dict(getattr(s3, operation)(Bucket=bucket_id, **params))
        except ClientError as error:
            code = str((error.response.get("Error") or {}).get("Code") or "")
            if http_status(error) in (400, 403) and code in _BODILESS_CODES:
                _learn_why(s3, bucket_id)
            raise


def _head_blob(s3: Any, bucket_id: str, blob_id: str) -> dict[str, Any]:
    """HeadObject. Its 404 has no body either: a HeadBucket then tells a missing bucket
    from a missing blob (only on that failure: a found blob costs one request)."""
    try:
        return _head(s3, bucket_id, "head_object", "blob", blob_id, Key=blob_id)
    except NotFoundError:
        _head(s3, bucket_id, "head_bucket", "bucket", bucket_id)
        raise


def part_size_for(configured: int, announced: int | None) -> int:
    """The size of an upload's parts: ``multipart_part_size``, or larger when the announced
    length needs more than MAX_PARTS of those (whole MiB, at most MAX_PART_SIZE). An upload
    of unannounced length keeps the configured size, so it can take MAX_PARTS of them
    (about 78 GiB at 8 MiB)."""
    if announced is None:
        return configured
    needed = -(-announced // MAX_PARTS)  # ceiling
    return min(MAX_PART_SIZE, max(configured, -(-needed // MIB) * MIB))


class Storage(EC2Base, abstract=True):
    def s3(self, ctx: CallContext) -> Any:
        return self.client(ctx, "s3")

    # ---- buckets -------------------------------------------------------------------------

    def list_buckets(self, ctx: CallContext, filters: Filters) -> list[m.Bucket]:
        with translated("bucket"):
            found = self.s3(ctx).list_buckets().get("Buckets", [])
        # ListBuckets names each bucket's region where the endpoint does (AWS does).
        buckets = [
            m.Bucket(id=b["Name"], name=b["Name"], location=b.get("BucketRegion", ""))
            for b in found
        ]
        return filter_on(buckets, filters, *COLLECTIONS["buckets"].filters)

    def get_bucket(self, ctx: CallContext, bucket_id: str) -> m.Bucket:
        names.existing_bucket(bucket_id)
        head = _head(self.s3(ctx), bucket_id, "head_bucket", "bucket", bucket_id)
        return m.Bucket(id=bucket_id, name=bucket_id, location=head.get("BucketRegion", ""))

    def create_bucket(self, ctx: CallContext, opts: m.CreateBucket) -> m.Bucket:
        names.check_bucket_name(opts.name)
        location = opts.location or self.region
        if not _REGION_NAME.fullmatch(location):
            raise ValidationError(
                f"location {location!r} is not a region name", metadata={"option": "location"}
            )
        params: dict[str, Any] = {"Bucket": opts.name}
        if location != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": location}
        # Asked of the location's own endpoint: S3 refuses a bucket of another region
        # from a regional one (IllegalLocationConstraintException).
        with translated("bucket", opts.name):
            self.client(ctx, "s3", location).create_bucket(**params)
        return m.Bucket(id=opts.name, name=opts.name, location=location)

    def delete_bucket(self, ctx: CallContext, bucket_id: str) -> None:
        names.existing_bucket(bucket_id)
        with translated("bucket", bucket_id):
            self.s3(ctx).delete_bucket(Bucket=bucket_id)

    # ---- blobs ---------------------------------------------------------------------------

    def list_blobs(self, ctx: CallContext, bucket_id: str, filters: Filters) -> list[m.Blob]:
        names.existing_bucket(bucket_id)
        params: dict[str, Any] = {"Bucket": bucket_id}
        prefix = str(filters.get("prefix") or "")
        if prefix:
            params["Prefix"] = prefix
        blobs: list[m.Blob] = []
        with translated("bucket", bucket_id):
            for page in self.s3(ctx).get_paginator("list_objects_v2").paginate(**params):
                blobs += [self._listed_blob(bucket_id, o) for o in page.get("Contents", [])]
        return blobs

    def blob_page(
        self, ctx: CallContext, filters: Filters, page_size: int, cursor: str
    ) -> tuple[list[m.Blob], str]:
        """A bucket's blobs a page at a time with ListObjectsV2's MaxKeys and continuation
        token (the cursor), in S3's order of keys: a page of a bucket of millions is one
        request."""
        bucket_id = str(filters.get("bucket_id") or "")
        names.existing_bucket(bucket_id)
        params: dict[str, Any] = {"Bucket": bucket_id, "MaxKeys": page_size}
        prefix = str(filters.get("prefix") or "")
        if prefix:
            params["Prefix"] = prefix
        if cursor:
            params["ContinuationToken"] = cursor
        with translated("bucket", bucket_id):
            answer = self.s3(ctx).list_objects_v2(**params)
        blobs = [self._listed_blob(bucket_id, o) for o in answer.get("Contents", [])]
        following = answer.get("NextContinuationToken") if answer.get("IsTruncated") else ""
        return blobs[:page_size], following or ""

    @staticmethod
    def _listed_blob(bucket_id: str, listed: dict[str, Any]) -> m.Blob:
        return m.Blob(
            id=listed["Key"],
            bucket_id=bucket_id,
            content_length=int(listed.get("Size", 0)),
            last_modified=listed.get("LastModified"),
        )

    def get_blob(self, ctx: CallContext, bucket_id: str, blob_id: str) -> m.Blob:
        names.existing_bucket(bucket_id)
        names.existing_blob(blob_id)
        return self._blob(bucket_id, blob_id, _head_blob(self.s3(ctx), bucket_id, blob_id))

    @staticmethod
    def _blob(bucket_id: str, blob_id: str, head: dict[str, Any]) -> m.Blob:
        return m.Blob(
            id=blob_id,
            bucket_id=bucket_id,
            content_length=int(head.get("ContentLength", 0)),
            content_type=head.get("ContentType", ""),
            last_modified=head.get("LastModified"),
            user_metadata=dict(head.get("Metadata", {})),
        )

    def put_blob(self, ctx: CallContext, opts: m.PutBlob) -> m.Blob:
        names.existing_bucket(opts.bucket_id)
        names.check_blob_key(opts.blob_id)
        _check_headers(opts.user_metadata, opts.content_type)
        s3 = self.s3(ctx)
        extra: dict[str, Any] = {}
        if opts.content_type:
            extra["ContentType"] = opts.content_type
        if opts.user_metadata:
            extra["Metadata"] = dict(opts.user_metadata)
        target = {"Bucket": opts.bucket_id, "Key": opts.blob_id}
        if opts.content_length is not None and opts.content_length > MAX_OBJECT_SIZE:
            raise ValidationError(
                f"S3 stores objects of at most {MAX_OBJECT_SIZE} bytes (5 TiB); this upload "
                f"announced {opts.content_length}",
                reason="BLOB_TOO_LARGE",
                metadata={"content_length": opts.content_length, "max": MAX_OBJECT_SIZE},
            )
        part_size = part_size_for(self.part_size, opts.content_length)
        # Fail before reading the stream.
        _head(s3, opts.bucket_id, "head_bucket", "bucket", opts.bucket_id)
        # The bytes not sent yet, as received: joined once per part (one copy) rather than
        # appended to a bytearray and sliced out of it (three).
        held: list[bytes] = []
        held_size = 0
        received = 0
        upload_id = ""
        parts: list[dict[str, Any]] = []
        # Parts go up in parallel, but at most multipart_concurrency at a time: memory
        # stays bounded by that many parts plus one, whatever the blob's size.
        pending: list[Future[dict[str, Any]]] = []
        parallel = self.multipart_concurrency
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="s3-part")
        # The process's upload budget covers the bytes held here too, not only the parts in
        # flight: an upload reserves room for the part it assembles before taking its first
        # byte (so an upload whose client stalls mid-part holds room, not memory beyond the
        # budget), and hands the reservation to the part when it goes up.
        unit = max(part_size, self.multipart_threshold)
        reserved = 0

        def reserve() -> None:
            """Room for the part being assembled: what is held, and what is still to come
            of it (a whole part's worth when the length was not announced)."""
            nonlocal reserved
            size = unit
            if opts.content_length is not None:
                size = min(unit, held_size + max(0, opts.content_length - received))
            left = ctx.time_left()
            wait = None if left is None else max(0.0, left - ANSWER_MARGIN)
            reserved = self.upload_budget.acquire(max(1, size), wait)

        def send(body: bytes) -> None:
            nonlocal reserved
            number = len(parts) + len(pending) + 1
            if number > MAX_PARTS:
                raise ValidationError(
                    f"S3 takes at most {MAX_PARTS} parts of {part_size} bytes from an upload "
                    "of unannounced length; announce its content_length to upload more",
                    reason="BLOB_TOO_LARGE",
                    metadata={"max_parts": MAX_PARTS, "part_size": part_size},
                )
            taken, reserved = reserved, 0
            future = pool.submit(self._part, s3, target, upload_id, number, body)
            future.add_done_callback(lambda _: self.upload_budget.release(taken))
            pending.append(future)
            if len(pending) >= parallel:
                parts.append(pending.pop(0).result())

        try:
            for chunk in opts.chunks:
                if not reserved:
                    reserve()
                held.append(bytes(chunk))
                held_size += len(chunk)
                received += len(chunk)
                if held_size <= self.multipart_threshold and not upload_id:
                    continue
                if not upload_id:
                    with translated("bucket", opts.bucket_id):
                        upload_id = s3.create_multipart_upload(**target, **extra)["UploadId"]
                while held_size >= part_size:
                    joined = b"".join(held)
                    send(joined[:part_size])  # no copy when it is exactly one part
                    rest = joined[part_size:]
                    held, held_size = ([rest] if rest else []), len(rest)
                    if rest:
                        reserve()
            body = b"".join(held)
            if not upload_id:
                with translated("bucket", opts.bucket_id):
                    written = s3.put_object(**target, Body=body, **extra)
            else:
                if body or not (parts or pending):
                    send(body)
                parts.extend(f.result() for f in pending)
                pending.clear()
                with _blob_translated(opts.bucket_id, opts.blob_id):
                    written = s3.complete_multipart_upload(
                        **target, UploadId=upload_id, MultipartUpload={"Parts": parts}
                    )
                upload_id = ""
        finally:
            if reserved:
                self.upload_budget.release(reserved)
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)
            if upload_id:  # failed or cancelled: leave no parts behind (best effort)
                with contextlib.suppress(Exception):
                    s3.abort_multipart_upload(**target, UploadId=upload_id)
        return self._stored(s3, opts, received, written)

    def _stored(self, s3: Any, opts: m.PutBlob, length: int, written: dict[str, Any]) -> m.Blob:
        """The blob this upload stored. A HeadObject on the condition that the object is
        still the one written (its ETag) describes it as S3 keeps it (the content type S3
        gave it, its time); if another write replaced it meanwhile (412), or the object
        cannot be looked at now (no s3:GetObject permission, the endpoint gone since), the
        upload is described from what it wrote: it is stored, and answering an error would
        have its client send it again."""
        head: dict[str, Any] | None = None
        with contextlib.suppress(ClientError, BotoCoreError, OSError):
            head = s3.head_object(
                Bucket=opts.bucket_id, Key=opts.blob_id, IfMatch=written.get("ETag", "")
            )
        # S3 keeps metadata keys in lower case (HTTP headers).
        mine = {key.lower(): value for key, value in opts.user_metadata.items()}
        # Equal bytes (equal ETags) may have come with other metadata: compare it too.
        if head is not None and (head.get("ContentLength"), head.get("Metadata")) == (length, mine):
            return self._blob(opts.bucket_id, opts.blob_id, head)
        sent = written.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        return m.Blob(
            id=opts.blob_id,
            bucket_id=opts.bucket_id,
            content_length=length,
            content_type=opts.content_type or S3_DEFAULT_CONTENT_TYPE,
            last_modified=parsedate_to_datetime(sent) if sent else None,
            user_metadata=mine,
        )

    @staticmethod
    def _part(
        s3: Any, target: dict[str, str], upload_id: str, number: int, body: bytes
    ) -> dict[str, Any]:
        with translated("blob", target["Key"]):
            answer = s3.upload_part(**target, UploadId=upload_id, PartNumber=number, Body=body)
        return {"ETag": answer["ETag"], "PartNumber": number}

    def get_blob_content(self, ctx: CallContext, bucket_id: str, blob_id: str) -> Iterator[bytes]:
        return self.open_blob(ctx, bucket_id, blob_id)[1]

    def open_blob(
        self, ctx: CallContext, bucket_id: str, blob_id: str
    ) -> tuple[m.Blob, Iterator[bytes]]:
        """One GetObject: its answer describes the object (as HeadObject would) of the body
        it streams, so a replace meanwhile cannot mix two versions, and a download costs
        one request to S3, not two."""
        names.existing_bucket(bucket_id)
        names.existing_blob(blob_id)
        with _blob_translated(bucket_id, blob_id):
            answer = self.s3(ctx).get_object(Bucket=bucket_id, Key=blob_id)
        body = answer["Body"]
        chunks = translated_iter(body.iter_chunks(DOWNLOAD_CHUNK), "blob", blob_id)
        return self._blob(bucket_id, blob_id, answer), _closing(chunks, body)

    def delete_blob(self, ctx: CallContext, bucket_id: str, blob_id: str) -> None:
        self.get_blob(ctx, bucket_id, blob_id)  # DeleteObject succeeds on unknown keys
        with _blob_translated(bucket_id, blob_id):
            self.s3(ctx).delete_object(Bucket=bucket_id, Key=blob_id)

    def update_blob_metadata(
        self, ctx: CallContext, bucket_id: str, blob_id: str, metadata: dict[str, str]
    ) -> dict[str, str]:
        """S3 metadata is immutable: copy the object onto itself with the new metadata, on
        the condition that it is still the version looked at (CopySourceIfMatch): the copy
        keeps that version's content type, which another's must not get. A version
        replaced in between is looked at again."""
        names.existing_bucket(bucket_id)
        names.existing_blob(blob_id)
        _check_headers(metadata)
        s3 = self.s3(ctx)
        for _ in range(METADATA_ATTEMPTS):
            head = _head_blob(s3, bucket_id, blob_id)
            if int(head.get("ContentLength", 0)) > 5 * 1024**3:
                raise ConflictError(
                    "S3 cannot update the metadata of an object over 5 GiB in one copy",
                    reason="BLOB_TOO_LARGE_FOR_COPY",
                )
            params: dict[str, Any] = {
                "Bucket": bucket_id,
                "Key": blob_id,
                "CopySource": {"Bucket": bucket_id, "Key": blob_id},
                "CopySourceIfMatch": head["ETag"],
                "Metadata": dict(metadata),
                "MetadataDirective": "REPLACE",
            }
            if head.get("ContentType"):
                params["ContentType"] = head["ContentType"]
            with _blob_translated(bucket_id, blob_id):
                try:
                    s3.copy_object(**params)
                except ClientError as error:
                    if http_status(error) != 412:
                        raise
                    continue  # replaced since the look: look again
            # What S3 keeps: the keys in lower case (HTTP headers).
            return {key.lower(): value for key, value in metadata.items()}
        raise ConflictError(
            f"blob {blob_id!r} was replaced {METADATA_ATTEMPTS} times while its metadata "
            "was being updated",
            reason="BLOB_CHANGED",
            metadata={"bucket_id": bucket_id, "blob_id": blob_id},
        )


def _check_headers(metadata: dict[str, str], content_type: str = "") -> None:
    """S3 keeps metadata and the content type as HTTP headers: the keys are checked by
    :func:`.names.check_user_metadata`; a value must not hold a line break or other control
    character (http.client refuses to send it) or begin or end with white space (HTTP drops
    it: S3 would keep another value than the one answered). Metadata values must be ASCII
    (S3 keeps no other; botocore refuses them before sending)."""
    names.check_user_metadata(metadata)
    for key, value in metadata.items():
        if not value.isascii():
            raise ValidationError(
                f"user_metadata value of {names.clip(key)!r} holds characters other than ASCII, "
                "which S3 cannot store",
                reason="INVALID_HEADER_VALUE",
                metadata={"option": "user_metadata", "key": names.clip(key)},
            )
        _check_header_value(value, f"metadata value of {key!r}")
    if content_type:
        _check_header_value(content_type, "content_type")


def _check_header_value(value: str, what: str) -> None:
    if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
        raise ValidationError(
            f"{what} holds a line break or other control character, which S3 cannot keep",
            reason="INVALID_HEADER_VALUE",
            metadata={"option": what},
        )
    if value != value.strip(" \t"):
        raise ValidationError(
            f"{what} begins or ends with white space, which S3 drops (HTTP trims header "
            "values): it would keep another value than the one given",
            reason="INVALID_HEADER_VALUE",
            metadata={"option": what},
        )


def _closing(chunks: Iterator[bytes], body: Any) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        body.close()


__all__ = ["NotFoundError", "Storage"]
