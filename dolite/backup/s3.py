"""The ``s3://BUCKET/PREFIX`` backup target: any S3-compatible store through boto3.

Options in the URL's query: ``endpoint_url`` (R2, MinIO, a local server; default AWS)
and ``region``. Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, a profile, an instance role), never from the URL. A PUT is
atomic in S3 (an object appears whole or not at all) and boto3 checksums each body.

Conditional writes (the backup lock) are S3's conditional PUTs: ``If-None-Match: *``
(put if absent) and ``If-Match: <ETag>`` (compare-and-swap); a tag is the ETag. The store
must honour them (AWS S3 does since 2024, and so does moto's server, which the tests use;
check another S3-compatible store): one that ignores them would let two holders take one
lock.
"""

from __future__ import annotations

from dolite.backup.errors import TargetUnavailable
from dolite.errors import InvalidURL

OPTIONS = {"endpoint_url", "region"}
_ABSENT = frozenset({"NoSuchKey", "404", "NotFound"})
# a condition that did not hold (412), or a concurrent conditional write that won (409)
_CONDITION_FAILED = _ABSENT | {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class S3Target:
    """Objects under ``prefix`` in ``bucket``."""

    def __init__(self, bucket: str, prefix: str, options: dict[str, str]):
        unknown = set(options) - OPTIONS
        if unknown:
            raise InvalidURL(f"s3 backup target: unknown option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise TargetUnavailable("s3 backup targets need boto3: pip install boto3") from exc
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}"
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60)
        self._client = boto3.client("s3", endpoint_url=options.get("endpoint_url"),
                                    region_name=options.get("region"), config=config)

    def put_object(self, key: str, data: bytes) -> None:
        self._call("write", key, self._client.put_object, Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        reply = self._call("write", key, self._client.put_object, absent=_CONDITION_FAILED, Bucket=self.bucket,
                           Key=self.prefix + key, Body=data, IfNoneMatch="*")
        return None if reply is None else reply["ETag"]

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        reply = self._call("read", key, self._client.get_object, Bucket=self.bucket, Key=self.prefix + key)
        return None if reply is None else (reply["Body"].read(), reply["ETag"])

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        reply = self._call("write", key, self._client.put_object, absent=_CONDITION_FAILED, Bucket=self.bucket,
                           Key=self.prefix + key, Body=data, IfMatch=tag)
        return None if reply is None else reply["ETag"]

    def get_object(self, key: str) -> bytes | None:
        reply = self._call("read", key, self._client.get_object, Bucket=self.bucket, Key=self.prefix + key)
        return None if reply is None else reply["Body"].read()

    def exists(self, key: str) -> bool:
        return self._call("find", key, self._client.head_object, Bucket=self.bucket, Key=self.prefix + key) is not None

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": self.prefix + key} for key in keys[start:start + 1000]]
            reply = self._call("delete", keys[start], self._client.delete_objects, Bucket=self.bucket,
                               Delete={"Objects": batch, "Quiet": True})
            if reply and reply.get("Errors"):
                raise TargetUnavailable(f"{self.url}: cannot delete {reply['Errors'][0]}")

    def list(self, prefix: str) -> list[str]:
        keys = []
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                keys += [item["Key"][len(self.prefix):] for item in page.get("Contents", [])]
        except Exception as exc:  # noqa: BLE001 - every botocore failure means the same here
            raise TargetUnavailable(f"{self.url}: cannot list {prefix}: {exc}") from exc
        return sorted(keys)

    def _call(self, what: str, key: str, method, absent=_ABSENT, **kwargs):
        """``method(**kwargs)``; None on an error whose code is in ``absent`` (by default:
        the object does not exist); TargetUnavailable on any other failure (unreachable,
        refused, no such bucket)."""
        from botocore.exceptions import ClientError

        try:
            return method(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in absent:
                return None
            raise TargetUnavailable(f"{self.url}: cannot {what} {key}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - connection errors, timeouts, bad credentials
            raise TargetUnavailable(f"{self.url}: cannot {what} {key}: {exc}") from exc
