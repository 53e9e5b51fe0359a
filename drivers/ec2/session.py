"""What every part of the EC2 driver shares: the provider (region and endpoint), the
driver options, and the call's boto3 client."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped]

from deltacloud.drivers import (
    NO_METER,
    BaseDriver,
    CallContext,
    DriverConfig,
    PermissionDeniedError,
    ValidationError,
    nonblocking,
)
from deltacloud.drivers import models as m

from .budget import shared_budget
from .clients import AwsCredentials, shared_cache

DEFAULT_REGION = "us-east-1"
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
MIB = 1024 * 1024
#: S3 refuses a part under 5 MiB (but the last).
MIN_PART_SIZE = 5 * MIB


def _regions() -> list[str]:
    found = boto3.session.Session().get_available_regions("ec2")
    return sorted(found) or [DEFAULT_REGION]


_REGIONS = _regions()


def split_provider(provider: str) -> tuple[str, str]:
    """``REGION`` or ``REGION@URL`` -> (region, endpoint URL or "")."""
    region, _, url = provider.partition("@")
    return region, url


def _size(name: str, text: str | None, default: int) -> int:
    """A byte size option: ``8388608``, ``8MiB``, ``512KiB``, ``1GiB``."""
    if not text:
        return default
    value = text.strip().lower()
    try:
        for suffix, factor in (("mib", MIB), ("kib", 1024), ("gib", 1024 * MIB), ("b", 1)):
            if value.endswith(suffix):
                size = int(float(value[: -len(suffix)]) * factor)
                break
        else:
            size = int(value)
    except ValueError:
        raise ValueError(f"ec2.{name} must be a size such as 8MiB, not {text!r}") from None
    if size <= 0:
        raise ValueError(f"ec2.{name} must be positive, not {text!r}")
    return size


def _count(name: str, text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"ec2.{name} must be a whole number, not {text!r}") from None
    if value < 1:
        raise ValueError(f"ec2.{name} must be at least 1, not {text!r}")
    return value


_YES = ("1", "true", "yes", "allow", "on")
_NO = ("", "0", "false", "no", "deny", "off")


def _flag(name: str, text: str | None) -> bool:
    value = (text or "").strip().lower()
    if value not in _YES + _NO:
        raise ValueError(
            f"ec2.{name} must be one of {', '.join(_YES)} or {', '.join(v for v in _NO if v)}, "
            f"not {text!r}"
        )
    return value in _YES


def endpoint_url_problem(url: str) -> str:
    """What keeps ``url`` from being an endpoint boto3 can use (http or https, a host, a
    numeric port, no ``user:password@``), never quoting a password; empty if nothing."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:  # "http://[::1": an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url.rpartition("@")[2] if "@" in url else url
        return f"must be an http:// or https:// URL, not {shown!r}"
    if parts.username is not None or parts.password is not None:
        # botocore would send it on as the URL's user information, and logs and the
        # provider's echo would carry it: the call's credentials are the only ones.
        return (
            f"must not carry user:password@ (for {parts.hostname}): the call's credentials are used"
        )
    return ""


def endpoint_url_ok(url: str) -> bool:
    return not endpoint_url_problem(url)


class EC2Base(BaseDriver, abstract=True):
    """Provider = AWS region (``us-east-1``), or ``REGION@URL`` for an EC2/S3-compatible
    endpoint when the server allows it (``ec2.provider_endpoints=allow``).

    Driver options (``--driver-option ec2.KEY=VALUE``):

    - ``endpoint_url``: one endpoint for EC2, S3 and ELB in every region (moto, LocalStack);
      ``endpoint_url.REGION``: for that region only.
    - ``provider_endpoints=allow``: accept ``REGION@URL`` providers from clients (off by
      default: it would let any caller make the server connect anywhere).
    - ``image_owners``: owners listed when the client filters on none (default ``self``).
    - ``instance_types``: comma list of instance types offered as hardware profiles, and
      listed by each image of their architecture (default: every type the region
      describes, several hundred on AWS: each image then lists hundreds).
    - ``default_instance_type`` / ``default_arm_instance_type``: the profile an instance
      gets when the client names none (t3.micro / t4g.micro).
    - ``multipart_threshold`` / ``multipart_part_size``: S3 uploads above the threshold
      go in parts of this size (8MiB / 8MiB; S3 needs at least 5MiB), larger when the
      announced length needs more than S3's 10,000 parts; an upload of unannounced length
      can take 10,000 parts (78 GiB at 8MiB), then BLOB_TOO_LARGE.
    - ``multipart_memory``: bytes the uploads of the process may hold, all together: the
      part each assembles and its parts in flight (256MiB). An upload reserves a part's
      worth (less when its announced length is smaller) before it takes a byte; past the
      budget uploads wait for room, until their deadline (then UNAVAILABLE UPLOADS_BUSY).
    - ``multipart_concurrency``: parts of one upload in flight at once (4). More helps
      against a distant endpoint; on a small machine next to its endpoint, fewer can be
      faster (bench/ec2_overhead on 2 cores with moto: 2 beat 4).
    - ``client_cache_size``: boto3 clients kept by the server process, all regions
      together, one per (credentials, region, endpoint, service, time budget) (64).
    """

    @classmethod
    def providers(cls) -> list[m.Provider]:
        return [
            m.Provider(id=r, name=f"AWS {r}", endpoint=f"https://ec2.{r}.amazonaws.com")
            for r in _REGIONS
        ]

    @classmethod
    def accepts_provider(cls, provider: str) -> bool:
        region, url = split_provider(provider)
        if not (region in _REGIONS or _REGION.match(region)):
            return False
        if not url:
            return True
        return endpoint_url_ok(url)

    @classmethod
    def default_provider(cls) -> str:
        return DEFAULT_REGION

    def __init__(self, provider: str, config: DriverConfig) -> None:
        super().__init__(provider, config)
        options = config.options
        self.region, provider_url = split_provider(provider)
        self._provider_url = provider_url
        self._allow_provider_urls = _flag("provider_endpoints", options.get("provider_endpoints"))
        self._endpoints = {k: v for k, v in options.items() if k.startswith("endpoint_url")}
        for key, url in self._endpoints.items():
            if problem := endpoint_url_problem(url):  # else every call would fail INTERNAL
                raise ValueError(f"ec2.{key} {problem}")
        self.endpoint = self.endpoint_for(self.region)
        self.image_owners = [
            o.strip() for o in (options.get("image_owners") or "self").split(",") if o.strip()
        ]
        self.instance_types = [
            t.strip() for t in (options.get("instance_types") or "").split(",") if t.strip()
        ]
        self.default_types = {
            "x86_64": options.get("default_instance_type") or "t3.micro",
            "arm64": options.get("default_arm_instance_type") or "t4g.micro",
        }
        self.multipart_threshold = _size(
            "multipart_threshold", options.get("multipart_threshold"), 8 * MIB
        )
        part_size = options.get("multipart_part_size")
        self.part_size = max(
            _size("multipart_part_size", part_size, self.multipart_threshold), MIN_PART_SIZE
        )
        if part_size and _size("multipart_part_size", part_size, 0) < MIN_PART_SIZE:
            raise ValueError(
                f"ec2.multipart_part_size must be at least 5MiB (S3's smallest part), "
                f"not {part_size!r}"
            )
        self.multipart_concurrency = _count(
            "multipart_concurrency", options.get("multipart_concurrency"), 4
        )
        self.upload_budget = shared_budget(
            _size("multipart_memory", options.get("multipart_memory"), 256 * MIB)
        )
        self._clients = shared_cache(
            _count("client_cache_size", options.get("client_cache_size"), 64)
        )
        if config.meter is not NO_METER:  # the server's (one per process)
            self._clients.meter = config.meter

    @nonblocking
    def authenticate(self, ctx: CallContext) -> None:
        """Cheap: the cloud checks the keys on the first real call (no STS round trip)."""
        AwsCredentials.from_context(ctx)
        if self._provider_url and not self._allow_provider_urls:
            raise PermissionDeniedError(
                "this server does not accept endpoint URLs in the provider; ask its operator "
                "to set --driver-option ec2.endpoint_url=... or ec2.provider_endpoints=allow",
                reason="PROVIDER_ENDPOINT_NOT_ALLOWED",
            )

    def endpoint_for(self, region: str) -> str:
        """The endpoint URL of ``region`` ("" for AWS's own): the provider's, else the
        region's ``endpoint_url.REGION``, else ``endpoint_url``."""
        return (
            self._provider_url
            or self._endpoints.get(f"endpoint_url.{region}", "")
            or self._endpoints.get("endpoint_url", "")
        )

    def client(self, ctx: CallContext, service: str, region: str = "") -> Any:
        """A client of ``service`` for the provider's region, or for ``region``."""
        region = region or self.region
        return self._clients.get(ctx, service, region, self.endpoint_for(region))

    # No close(): the clients belong to the process's shared cache, which other regions'
    # drivers still use; they go with the process.


def require_text(value: str, what: str) -> str:
    if not value:
        raise ValidationError(f"{what} is required", metadata={"field": what})
    return value


def tag(tags: list[dict[str, str]] | None, key: str) -> str:
    for item in tags or []:
        if item.get("Key") == key:
            return str(item.get("Value", ""))
    return ""
