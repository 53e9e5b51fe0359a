"""The names a client chooses that the EC2 driver sends to AWS, held to AWS's documented
rules before any request. moto (the tests' endpoint) takes names AWS refuses: without these
checks such a name failed only against AWS, or made on moto an object AWS could never have.

A create given a name AWS would refuse is INVALID_ARGUMENT, reason ``INVALID_NAME``, its
message saying which rule the name breaks and its metadata naming the field (``option``).
A lookup (get, delete, a reference from another create) of a name no object can have is
NOT_FOUND, without a request: AWS may answer a malformed name as a bad parameter, and moto
may even hold an object by that name, which AWS could not have.

The rules, as AWS states them:

- bucket: S3 User Guide, "General purpose bucket naming rules". Lookups are held to the
  rules that ever applied: before March 2018, buckets made in us-east-1 could have upper-case
  letters and underscores and up to 255 characters, so only names outside even those rules
  are NOT_FOUND.
- load balancer (classic ELB): ELB API Reference, CreateLoadBalancer, LoadBalancerName.
- firewall (security group): EC2 API Reference, CreateSecurityGroup, GroupName and
  GroupDescription (the VPC rules; EC2-Classic is retired).
- key pair: EC2 API Reference, CreateKeyPair / ImportKeyPair, KeyName.
- image: EC2 API Reference, CreateImage, Name.
- tag values (the Name of instances, volumes and snapshots, the Description of volumes):
  EC2 User Guide, "Tag restrictions". The tag keys are the driver's own.
- blob key: S3 User Guide, "Naming Amazon S3 objects".
- user metadata: S3 User Guide, "Working with object metadata" (2 KB of keys and values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from botocore.handlers import VALID_S3_ARN  # type: ignore[import-untyped]

from deltacloud.drivers import NotFoundError, ValidationError

INVALID_NAME = "INVALID_NAME"

BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
#: A bucket name any rule ever allowed (us-east-1's before 2018), as botocore sends it.
_LEGACY_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")
_IP_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_LOAD_BALANCER = re.compile(r"[A-Za-z0-9-]+")
#: The characters of a security group's name and description in a VPC.
_GROUP_CHARS = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+")
_IMAGE_CHARS = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]+")
MAX_TAG_VALUE = 256
MAX_BLOB_KEY_BYTES = 1024
MAX_USER_METADATA_BYTES = 2048
#: A header name's characters (RFC 9110 token): what an S3 metadata key may hold.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def clip(value: str, limit: int = 64) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _refused(what: str, option: str, value: str, rule: str) -> ValidationError:
    return ValidationError(
        f"{what} {clip(value)!r} is not allowed: {rule}",
        reason=INVALID_NAME,
        metadata={"option": option, "value": clip(value)},
    )


# ---- buckets -----------------------------------------------------------------------------


def bucket_problem(name: str) -> str:
    """The S3 rule a new bucket's ``name`` breaks; '' if none."""
    if not 3 <= len(name) <= 63:
        return f"S3 bucket names have 3 to 63 characters, not {len(name)}"
    if not _BUCKET_CHARS.fullmatch(name):
        return "S3 bucket names hold only lower-case letters, digits, dots and hyphens"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "S3 bucket names begin and end with a letter or digit"
    if ".." in name:
        return "S3 bucket names have no two adjacent dots"
    if _IP_ADDRESS.fullmatch(name):
        return "S3 bucket names are not IP addresses"
    for prefix in BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"S3 reserves the prefix {prefix!r}"
    for suffix in BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"S3 reserves the suffix {suffix!r}"
    return ""


def check_bucket_name(name: str) -> None:
    if problem := bucket_problem(name):
        raise _refused("bucket name", "name", name, problem)


def existing_bucket(bucket_id: str) -> None:
    """NOT_FOUND for a bucket id no bucket can have, even one named under the rules of
    us-east-1 before 2018 (access point ARNs pass)."""
    if VALID_S3_ARN.fullmatch(bucket_id):
        return
    if not _LEGACY_BUCKET.fullmatch(bucket_id) or _IP_ADDRESS.fullmatch(bucket_id):
        raise NotFoundError("bucket", bucket_id)


# ---- blobs -------------------------------------------------------------------------------


def _blob_key_problem(key: str) -> str:
    size = len(key.encode())
    if size > MAX_BLOB_KEY_BYTES:
        return f"S3 object keys take at most {MAX_BLOB_KEY_BYTES} bytes of UTF-8, not {size}"
    return ""


def check_blob_key(key: str) -> None:
    if problem := _blob_key_problem(key):
        raise _refused("blob id", "blob_id", key, problem)


def existing_blob(blob_id: str) -> None:
    """NOT_FOUND for a blob id no object can have."""
    if _blob_key_problem(blob_id):
        raise NotFoundError("blob", blob_id)


def check_user_metadata(metadata: Mapping[str, str]) -> None:
    """S3 keeps user metadata as HTTP headers (x-amz-meta-KEY): a key must be a header name,
    and keys differing only in case are one header (S3 joins their values); keys and values
    take at most 2 KB together."""
    seen: dict[str, str] = {}
    for key in metadata:
        if not _TOKEN.fullmatch(key):
            raise ValidationError(
                f"metadata key {clip(key)!r} is not an HTTP header name (letters, digits and "
                "!#$%&'*+-.^_`|~), as S3 needs",
                reason="INVALID_METADATA_KEY",
                metadata={"option": "user_metadata"},
            )
        other = seen.setdefault(key.lower(), key)
        if other != key:
            raise ValidationError(
                f"metadata keys {clip(other)!r} and {clip(key)!r} differ only in case: S3 "
                "keeps them as one header, joining their values",
                reason="INVALID_METADATA_KEY",
                metadata={"option": "user_metadata", "key": clip(key)},
            )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_USER_METADATA_BYTES:
        raise ValidationError(
            f"user_metadata takes {size} bytes (keys and values, UTF-8); S3 keeps at most "
            f"{MAX_USER_METADATA_BYTES}",
            reason="METADATA_TOO_LARGE",
            metadata={"option": "user_metadata", "limit": MAX_USER_METADATA_BYTES},
        )


# ---- load balancers ----------------------------------------------------------------------


def _load_balancer_problem(name: str) -> str:
    if not 1 <= len(name) <= 32:
        return f"load balancer names have 1 to 32 characters, not {len(name)}"
    if not _LOAD_BALANCER.fullmatch(name):
        return "load balancer names hold only letters, digits and hyphens"
    if name.startswith("-") or name.endswith("-"):
        return "load balancer names do not begin or end with a hyphen"
    return ""


def check_load_balancer_name(name: str) -> None:
    if problem := _load_balancer_problem(name):
        raise _refused("load balancer name", "name", name, problem)


def existing_load_balancer(lb_id: str) -> None:
    if _load_balancer_problem(lb_id):
        raise NotFoundError("load_balancer", lb_id)


# ---- firewalls (security groups) ---------------------------------------------------------


def _group_text_problem(text: str, what: str) -> str:
    if len(text) > 255:
        return f"a security group's {what} has at most 255 characters, not {len(text)}"
    if not _GROUP_CHARS.fullmatch(text):
        return (
            f"a security group's {what} holds only letters, digits, spaces and "
            "._-:/()#,@[]+=&;{}!$* (ASCII)"
        )
    return ""


def check_firewall(name: str, description: str) -> None:
    if problem := _group_text_problem(name, "name"):
        raise _refused("firewall name", "name", name, problem)
    if name.startswith("sg-"):
        raise _refused("firewall name", "name", name, "EC2 reserves the prefix 'sg-' for ids")
    if problem := _group_text_problem(description, "description"):
        raise _refused("firewall description", "description", description, problem)


# ---- key pairs ---------------------------------------------------------------------------


def _key_problem(name: str) -> str:
    if not 1 <= len(name) <= 255:
        return f"key pair names have 1 to 255 characters, not {len(name)}"
    if not name.isascii():
        return "key pair names hold only ASCII characters"
    return ""


def check_key_name(name: str) -> None:
    if problem := _key_problem(name):
        raise _refused("key name", "name", name, problem)


def existing_key(key_id: str) -> None:
    if _key_problem(key_id):
        raise NotFoundError("key", key_id)


# ---- images ------------------------------------------------------------------------------


def check_image_name(name: str) -> None:
    problem = ""
    if not 3 <= len(name) <= 128:
        problem = f"image names have 3 to 128 characters, not {len(name)}"
    elif not _IMAGE_CHARS.fullmatch(name):
        problem = "image names hold only letters, digits, spaces and ()[]./-'@_ (ASCII)"
    if problem:
        raise _refused("image name", "name", name, problem)


# ---- tags --------------------------------------------------------------------------------


def check_tag_value(option: str, value: str) -> None:
    """A name or description the driver keeps as the value of a tag (Name, Description)."""
    if len(value) > MAX_TAG_VALUE:
        rule = f"EC2 keeps it as a tag value, of at most {MAX_TAG_VALUE} characters"
        raise _refused(option, option, value, f"{rule}, not {len(value)}")
